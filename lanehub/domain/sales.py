"""Closed sales: written by the store that closed the ticket, kept by HQ per
customer across stores, and replicated like any other record so that a sale
can be tracked to a customer after the fact (from the store or from HQ)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from lanehub.domain.catalogue import natural_key
from lanehub.domain.entity import EntitySpec, check_customer_id, check_json_list, check_unknown, text_checks
from lanehub.domain.purchase_summaries import summarized_purchases
from lanehub.replication.sqlite import transaction

if TYPE_CHECKING:  # the protocol's module imports the replica, which imports the domain model
    from lanehub.replication.site import SiteDatabase

SALE_FIELDS = ("ticket", "store", "lane", "customer_id", "closed_at", "total", "currency", "lines", "coupon", "by")


def sale_key(ticket: str) -> str:
    return natural_key("sale", ticket)


def check_sale_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {name: 64 for name in SALE_FIELDS if name != "lines"} | {"lines": 1_000_000})
    check_unknown(fields, SALE_FIELDS, "sale", errors)
    check_customer_id(fields, errors)
    check_json_list(fields, "lines", "lines", errors)
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


def purchase_history(conn, customer_id: str, limit: int = 50) -> list[dict]:
    """A customer's sales across stores, newest first: items, brands, sizes, dates, stores.
    A store has its own sales; the others' recent ones come from the customer's
    purchase summary (lanehub.domain.purchase_summaries)."""
    own = _sales_history(conn, customer_id, limit)
    seen = {sale["ticket"] for sale in own}
    others = [{"ticket": p.get("ticket", ""), "store": p.get("store", ""), "lane": p.get("lane", ""),
               "date": p.get("date", ""), "total": p.get("total", ""), "currency": p.get("currency", ""),
               "items": [{k: item.get(k, "") for k in HISTORY_ITEM_KEYS} for item in p.get("items", [])
                         if isinstance(item, dict)]}
              for p in summarized_purchases(conn, customer_id) if p.get("ticket") not in seen]
    return sorted(own + others, key=lambda sale: (sale["date"], sale["ticket"]), reverse=True)[:limit]


HISTORY_ITEM_KEYS = ("sku", "description", "brand", "size", "qty", "unit_price", "amount")


def _sales_history(conn, customer_id: str, limit: int) -> list[dict]:
    rows = conn.execute(
        "SELECT ticket, store, lane, closed_at, total, currency, lines FROM sales WHERE customer_id = ? "
        "ORDER BY closed_at DESC LIMIT ?", (customer_id, limit)).fetchall()
    out = []
    for row in rows:
        lines = json.loads(row[6] or "[]")
        out.append({"ticket": row[0], "store": row[1], "lane": row[2], "date": row[3], "total": row[4], "currency": row[5],
                    "items": [{k: line.get(k, "") for k in HISTORY_ITEM_KEYS} for line in lines]})
    return out


class SaleError(ValueError):
    """A sale that cannot be tracked to a customer (one line for the CLI or page)."""


def track_sale(db: SiteDatabase, ticket: str, customer_ref: str, by: str) -> dict[str, Any]:
    """Attach a closed sale without a customer to one, after the fact. ``db`` is
    HQ's or an edge's database: the change replicates like any other."""
    with transaction(db.conn):
        sale = db.replica.get("sale", sale_key(ticket))
        if sale is None:
            store = getattr(db, "store", "")  # a store keeps only its own sales (D45)
            if store and not ticket.startswith(f"{store}-") and re.match(r"^[A-Za-z0-9_]+-", ticket):
                raise SaleError(f"no sale {ticket} here: a store keeps only its own sales; track it at "
                                f"{ticket.split('-', 1)[0]} or at HQ")
            raise SaleError(f"no sale {ticket}")
        customer = db.find_customer(customer_ref)
        if customer is None:
            raise SaleError(f"no customer {customer_ref}")
        if sale["customer_id"] == customer["id"]:
            return sale
        if sale["customer_id"]:
            raise SaleError(f"sale {ticket} already belongs to another customer")
        if not customer["active"]:
            raise SaleError(f"customer {customer['code']} is deactivated")
        db.write("sale", sale["id"], {"customer_id": customer["id"]}, by)
    tracked = db.replica.get("sale", sale["id"])
    assert tracked is not None  # read above, and a write never removes a record
    return tracked
