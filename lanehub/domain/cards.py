"""Handing a customer a card, the same at HQ and in a store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import ENTITIES, ValidationError
from lanehub.domain.payment_cards import find_payment_card, mask, refusal
from lanehub.protocol.change import new_id
from lanehub.replication.sqlite import transaction

if TYPE_CHECKING:  # the protocol's module imports the replica, which imports the domain model
    from lanehub.replication.site import SiteDatabase


def add_card(db: SiteDatabase, customer_id: str, number: str, kind: str, by: str, *, error_field: str = "number") -> dict[str, Any]:
    """Give a customer a card through ``db`` (HQ's or an edge's database). A number
    belongs to one customer only: checked against this replica, and at HQ again
    against every store's. Errors are reported under ``error_field``. A payment card
    number is refused with its masked form (lanehub.domain.payment_cards): every way a card is
    handed out (lane, CLI, pages, API) comes through here."""
    found = find_payment_card(number) if isinstance(number, str) else None
    if found:
        raise ValidationError({error_field: refusal(mask(found))})
    spec = ENTITIES["card"]
    fields = spec.normalize({"number": number, "customer_id": customer_id, "kind": kind, "active": True})
    # A card's checks never read the code format, which a store has only once HQ sent it.
    errors = spec.check_fields(fields, db.codes or CodeFormat())
    if errors:
        raise ValidationError({error_field if k == "number" else k: v for k, v in errors.items()})
    with transaction(db.conn):
        owner = db.conn.execute("SELECT id, customer_id FROM cards WHERE number = ? AND active = 1",
                                (fields["number"],)).fetchone()
        if owner and owner["customer_id"] != customer_id:
            raise ValidationError({error_field: f"card {fields['number']} already belongs to another customer"})
        if owner:
            card = db.replica.get("card", owner["id"])
            assert card is not None  # the row just found in cards
            return card
        key = new_id()
        db.write("card", key, fields, by)
    card = db.replica.get("card", key)
    assert card is not None  # just written
    return card
