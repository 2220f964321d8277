"""Customers at the register beyond search and create: update contact details,
hand out a card, record marketing consent, look up purchase history
(docs/protocol.md lane customer request; issue 3)."""

from __future__ import annotations

import time
from typing import Callable

from edge.db import EdgeDatabase, PastDeadline
from lanehub.domain.model import ValidationError, current_consents
from lanehub.domain.payment_cards import payment_card_errors
from lanehub.domain.sales import purchase_history
from lanehub.domain.search import lane_view
from lanehub.protocol.lane import CustomerReply, CustomerRequest
from lanehub.replication.sqlite import transaction

# What a cashier may change at the register; the rest is the office's.
LANE_EDITABLE = ("first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city", "postcode",
                 "country", "contact", "no_paper")


def customer_view(db: EdgeDatabase, record: dict) -> dict:
    return lane_view(record) | {"consents": current_consents(db.conn, record["id"])}


def past_deadline(db: EdgeDatabase, request: CustomerRequest) -> CustomerReply | None:
    """A write that reaches the edge after the lane stopped waiting is refused: the
    lane told its cashier it failed, and a late write would win over newer edits.
    One already carried out (a resend of a done request) is answered as done."""
    late = time.time() - request.deadline
    if request.deadline and late > 0 and db.lane_request_key(request.id) is None:
        return CustomerReply(ok=False, error=f"not applied: the request reached the store {late:.1f}s after its deadline")
    return None


def payment_card_refusal(request: CustomerRequest) -> CustomerReply | None:
    """A lane request that carries a payment card number anywhere a person typed or
    a reader put text (the search, a card, a customer's fields, the reference) is
    refused before it is looked up or written: the reply names the field and shows
    the masked number only (lanehub.domain.payment_cards)."""
    texts = {"q": request.q, "ref": request.ref, "card": request.card, "user": request.user}
    errors = payment_card_errors(texts | {k: v for k, v in request.customer.items() if isinstance(v, str)})
    if not errors:
        return None
    return CustomerReply(ok=False, error=f"invalid {request.op}: {ValidationError(errors)}", errors=errors)


def register_op(db: EdgeDatabase, request: CustomerRequest, lane: str,
                ask_hq_history: Callable[[str, int], list | None]) -> CustomerReply:
    if request.op != "history" and (refused := past_deadline(db, request)):
        return refused
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
    done = db.lane_request_key(request.id)
    if done:  # a redelivery: carried out already, never twice (a late stamp would win)
        return CustomerReply(ok=True, customer=customer_view(db, db.replica.get("customer", done) or customer))
    try:
        with transaction(db.conn), db.until(request.deadline):  # the write and its request id, together
            if request.id:
                db.remember_lane_request(request.id, customer["id"])
            customer = _write_op(db, request, lane, user, customer)
    except ValidationError as exc:
        return CustomerReply(ok=False, error=f"invalid {request.op}: {exc}", errors=exc.errors)
    except PastDeadline as exc:
        return CustomerReply(ok=False, error=str(exc))
    return CustomerReply(ok=True, customer=customer_view(db, customer))


def _write_op(db: EdgeDatabase, request: CustomerRequest, lane: str, user: str, customer: dict) -> dict:
    if request.op == "update":
        refused = sorted(set(request.customer) - set(LANE_EDITABLE))
        if refused:
            raise ValidationError({name: "cannot be changed at the register" for name in refused})
        customer = db.update_customer(customer["id"], request.customer, user)
    elif request.op == "add_card":
        db.add_card(customer["id"], request.card, request.kind, user)
    elif request.op == "consent":
        db.record_consent(customer["id"], request.channel, bool(request.granted), lane, user)
    return customer
