"""A customer's recent purchases in every store, compact (D45).

Sales go to HQ and their own store only (lanehub.protocol.routes). So that a
register still shows a customer's purchases in other stores while HQ is away,
HQ keeps one ``purchase_summary`` record per customer who bought something,
replicated to every store: the last ``RECENT`` purchases, newest first, each
with its store, date, total and items (description, brand, size, quantity),
at most ``ITEMS`` items each. HQ rewrites it in the transaction that applies
a sale of that customer (or tracks a sale to them), from its own sales.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lanehub.domain.entity import EntitySpec, check_customer_id, check_json_list, check_unknown, text_checks

RECENT = 10  # purchases kept per customer
ITEMS = 20  # items kept per purchase
ITEM_KEYS = ("sku", "description", "brand", "size", "qty", "amount")
SUMMARY_FIELDS = ("customer_id", "purchases")


def check_summary_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"customer_id": 36, "purchases": 200_000})
    check_unknown(fields, SUMMARY_FIELDS, "purchase summary", errors)
    check_customer_id(fields, errors)
    check_json_list(fields, "purchases", "purchases", errors)
    return errors


PURCHASE_SUMMARY = EntitySpec(
    name="purchase_summary",
    table="purchase_summaries",
    fields=SUMMARY_FIELDS,
    defaults={"customer_id": "", "purchases": "[]"},
    check_fields=check_summary_fields,
    required=("customer_id",),
    immutable=("customer_id",),
    indexes=(("customer_id",),),
)


def summary_of(conn: sqlite3.Connection, customer_id: str) -> list[dict[str, Any]]:
    """The customer's last purchases from this site's sales (HQ has them all)."""
    rows = conn.execute("SELECT ticket, store, lane, closed_at, total, currency, lines FROM sales "
                        "WHERE customer_id = ? ORDER BY closed_at DESC, ticket DESC LIMIT ?", (customer_id, RECENT))
    out = []
    for ticket, store, lane, closed_at, total, currency, lines in rows:
        items = [{key: line.get(key, "") for key in ITEM_KEYS} for line in json.loads(lines or "[]")[:ITEMS]]
        out.append({"ticket": ticket, "store": store, "lane": lane, "date": closed_at, "total": total,
                    "currency": currency, "items": items})
    return out


def summarized_purchases(conn: sqlite3.Connection, customer_id: str) -> list[dict[str, Any]]:
    """The purchases in the customer's summary on this site's replica (empty if none)."""
    row = conn.execute("SELECT purchases FROM purchase_summaries WHERE customer_id = ? AND id = ?",
                       (customer_id, customer_id)).fetchone()
    try:
        purchases = json.loads(row[0]) if row and row[0] else []
    except ValueError:
        return []
    return [p for p in purchases if isinstance(p, dict)]
