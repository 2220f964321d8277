"""Customers at the register beyond search and create: update contact details,
hand out a card, record marketing consent, look up purchase history
(DESIGN section 4's lane customer request; issue 3)."""

from __future__ import annotations

from typing import Callable

from core.messages import CustomerReply, CustomerRequest
from core.model import ValidationError, current_consents
from core.sales import purchase_history

from .db import EdgeDatabase
from core.search import lane_view

# What a cashier may change at the register; the rest is the office's.
LANE_EDITABLE = ("first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city", "postcode",
                 "country", "contact", "no_paper")


def customer_view(db: EdgeDatabase, record: dict) -> dict:
    return lane_view(record) | {"consents": current_consents(db.conn, record["id"])}


def register_op(db: EdgeDatabase, request: CustomerRequest, lane: str,
                ask_hq_history: Callable[[str, int], list | None]) -> CustomerReply:
    customer = db.find_customer(request.ref.strip())
    if customer is None:
        return CustomerReply(ok=False, error=f"no customer {request.ref}")
    user = request.user or f"lane:{lane}"
    if request.op == "history":
        remote = ask_hq_history(customer["id"], request.limit)
        if remote is not None:
            return CustomerReply(ok=True, customer=lane_view(customer), history=remote, source="hq")
        return CustomerReply(ok=True, customer=lane_view(customer), history=purchase_history(db.conn, customer["id"], request.limit),
                             source="local")
    try:
        if request.op == "update":
            refused = sorted(set(request.customer) - set(LANE_EDITABLE))
            if refused:
                raise ValidationError({name: "cannot be changed at the register" for name in refused})
            customer = db.update_customer(customer["id"], request.customer, user)
        elif request.op == "add_card":
            db.add_card(customer["id"], request.card, request.kind, user)
        elif request.op == "consent":
            db.record_consent(customer["id"], request.channel, bool(request.granted), lane, user)
    except ValidationError as exc:
        return CustomerReply(ok=False, error=f"invalid {request.op}: {exc}", errors=exc.errors)
    return CustomerReply(ok=True, customer=customer_view(db, customer))
