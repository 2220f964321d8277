"""Closed sales: written by the store that closed the ticket, kept by HQ per
customer across stores, and replicated like any other record so that a sale
can be tracked to a customer after the fact (from the store or from HQ)."""

from __future__ import annotations

import json

from .catalogue import natural_key
from .entity import EntitySpec, UUID_RE, text_checks

SALE_FIELDS = ("ticket", "store", "lane", "customer_id", "closed_at", "total", "currency", "lines", "coupon", "by")


def sale_key(ticket: str) -> str:
    return natural_key("sale", ticket)


def check_sale_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {name: 64 for name in SALE_FIELDS if name != "lines"} | {"lines": 1_000_000})
    for name in sorted(set(fields) - set(SALE_FIELDS)):
        errors[name] = "is not a sale field"
    value = fields.get("customer_id")
    if value and "customer_id" not in errors and not UUID_RE.match(value):
        errors["customer_id"] = "must be a customer id"
    if "lines" in fields and "lines" not in errors:
        try:
            lines = json.loads(fields["lines"])
        except ValueError:
            lines = None
        if not isinstance(lines, list):
            errors["lines"] = "must be a JSON list of lines"
    return errors


SALE = EntitySpec(
    name="sale",
    table="sales",
    fields=SALE_FIELDS,
    defaults={name: "" for name in SALE_FIELDS} | {"lines": "[]"},
    check_fields=check_sale_fields,
    required=("ticket", "store", "lane", "closed_at", "total", "lines"),
    immutable=("ticket", "store", "lane", "closed_at", "total", "currency", "lines"),
    indexes=(("ticket",), ("customer_id", "closed_at")),
)
