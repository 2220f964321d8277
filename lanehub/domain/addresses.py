"""A customer's addresses beyond the one on the record (docs/decisions.md D44).

The customer record's own street, city, postcode and country stay the
customer's **main** address (what search, imports and older stores know).
Further addresses are ``address`` records of their own, replicated like cards
(each field merged on its own, written by HQ and by stores): a kind (billing,
delivery, other), an optional label ("warehouse"), the address lines, and
``preferred``: the one of its kind to use (a billing address for invoices).
An address is never deleted, only deactivated, so every replica agrees on it
whatever order the changes arrive in. Adding, preferring and removing one:
lanehub.domain.address_edits.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from lanehub.domain.entity import MAX_TEXT, EntitySpec, check_bools, check_unknown, text_checks
from lanehub.domain.payment_cards import payment_card_errors

ADDRESS_KINDS = ("billing", "delivery", "other")
ADDRESS_LINES = ("street", "city", "postcode", "country")
ADDRESS_FIELDS = ("customer_id", "kind", "label", *ADDRESS_LINES, "preferred", "active")
KIND_LABELS = {"billing": "Billing", "delivery": "Delivery", "other": "Other", "main": "Main"}
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_address_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"customer_id": 36, "kind": 16, "label": 60, "street": MAX_TEXT, "city": MAX_TEXT,
                                  "postcode": 16, "country": 60})
    if "customer_id" in fields and "customer_id" not in errors and not _UUID_RE.match(fields["customer_id"]):
        errors["customer_id"] = "must be a customer id"
    if "kind" in fields and "kind" not in errors and fields["kind"] not in ADDRESS_KINDS:
        errors["kind"] = f"must be one of {', '.join(ADDRESS_KINDS)}"
    check_bools(fields, ("preferred", "active"), errors)
    check_unknown(fields, ADDRESS_FIELDS, "address", errors)
    # Never a payment card number, in any text field (lanehub.domain.payment_cards).
    for name, message in payment_card_errors({k: v for k, v in fields.items() if isinstance(v, str)}).items():
        errors.setdefault(name, message)
    return errors


def _normalize(fields: dict) -> dict:
    out = {}
    for name, value in fields.items():
        if isinstance(value, str):
            value = " ".join(value.split())
            if name == "kind":
                value = value.lower()
            elif name == "postcode":
                value = value.upper()
        out[name] = value
    return out


ADDRESS = EntitySpec(
    name="address",
    table="addresses",
    fields=ADDRESS_FIELDS,
    defaults={"customer_id": "", "kind": "delivery", "label": "", "street": "", "city": "", "postcode": "",
              "country": "", "preferred": False, "active": True},
    bools=frozenset({"preferred", "active"}),
    check_fields=check_address_fields,
    required=("customer_id", "kind"),
    immutable=("customer_id",),
    indexes=(("customer_id",),),
    normalize=_normalize,
)


def one_line(address: dict[str, Any]) -> str:
    """"Calle Mayor 1, 28013 Madrid, Spain"."""
    town = " ".join(part for part in (address.get("postcode", ""), address.get("city", "")) if part)
    return ", ".join(part for part in (address.get("street", ""), town, address.get("country", "")) if part)


def addresses_of(conn: sqlite3.Connection, customer_id: str, include_inactive: bool = False) -> list[dict[str, Any]]:
    """The customer's address records, preferred first within each kind."""
    rows = conn.execute(
        "SELECT * FROM addresses WHERE customer_id = ?" + ("" if include_inactive else " AND active = 1") +
        " ORDER BY kind, preferred DESC, label, street", (customer_id,)).fetchall()
    return [dict(row) | {"line": one_line(dict(row)), "kind_label": KIND_LABELS.get(row["kind"], row["kind"])}
            for row in rows]


def address_for(conn: sqlite3.Connection, customer: dict[str, Any], kind: str) -> str:
    """The one-line address of ``kind`` to use (its preferred one, else any), else the main address."""
    row = conn.execute("SELECT * FROM addresses WHERE customer_id = ? AND kind = ? AND active = 1 "
                       "ORDER BY preferred DESC, rid LIMIT 1", (customer["id"], kind)).fetchone()
    return one_line(dict(row)) if row else one_line(customer)
