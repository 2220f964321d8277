"""Merging a possible duplicate into a survivor (issue 5).

The other record is deactivated and points to the survivor (``merged_into``),
so its code still resolves, to the survivor; its active cards, its sales,
its unredeemed coupons, its household (and headship) and the extra field
values the survivor lacks move to the survivor. Every step is an HQ change, so every
store sees the merge. Consent history stays on the record where it was given.
"""

from __future__ import annotations

from hq.db import HQDatabase
from lanehub.domain.addresses import ADDRESS_FIELDS, addresses_of
from lanehub.domain.extra_fields import extras_of, write_extras
from lanehub.domain.model import ValidationError
from lanehub.protocol.change import new_id
from lanehub.protocol.hlc import now_iso
from lanehub.replication.sqlite import transaction


def merge_customers(db: HQDatabase, survivor_id: str, other_id: str, by: str) -> dict:
    with transaction(db.conn):
        survivor = db.replica.get("customer", survivor_id)
        other = db.replica.get("customer", other_id)
        if survivor is None or other is None or survivor_id == other_id:
            raise ValidationError({"survivor": "choose one of the two customers to keep"})
        if other["merged_into"] or survivor["merged_into"]:
            raise ValidationError({"survivor": "one of these customers was already merged"})
        stamp = now_iso()
        db.write("customer", other_id, {"active": False, "merged_into": survivor_id, "updated_at": stamp,
                                         "updated_by": by}, by)
        for (card,) in db.conn.execute("SELECT id FROM cards WHERE customer_id = ? AND active = 1", (other_id,)).fetchall():
            db.write("card", card, {"customer_id": survivor_id}, by)
        # An address belongs to its customer for good (customer_id never changes): the
        # survivor gets a copy of each of the other's, the other's are deactivated.
        for address in addresses_of(db.conn, other_id):
            copy = {name: address[name] for name in ADDRESS_FIELDS if name not in ("customer_id", "preferred")}
            db.write("address", new_id(), copy | {"customer_id": survivor_id, "preferred": False}, by)
            db.write("address", address["id"], {"active": False, "preferred": False}, by)
        for (sale,) in db.conn.execute("SELECT id FROM sales WHERE customer_id = ?", (other_id,)).fetchall():
            db.write("sale", sale, {"customer_id": survivor_id}, by)
        # Coupons not yet redeemed were given to the person, who is the survivor now.
        for (coupon,) in db.conn.execute("SELECT id FROM coupons WHERE customer_id = ? AND status = 'active'",
                                         (other_id,)).fetchall():
            db.write("coupon", coupon, {"customer_id": survivor_id}, by)
        for (household,) in db.conn.execute("SELECT id FROM households WHERE head_customer_id = ?", (other_id,)).fetchall():
            db.write("household", household, {"head_customer_id": survivor_id}, by)
        # Extra field values the survivor lacks are taken from the other record.
        kept = extras_of(db.conn, survivor_id)
        write_extras(db, survivor, {name: value for name, value in extras_of(db.conn, other_id).items()
                                    if value and not kept.get(name)}, by)
        if other["household_id"] and not survivor["household_id"]:
            db.write("customer", survivor_id, {"household_id": other["household_id"], "updated_at": stamp,
                                                "updated_by": by}, by)
        a, b = sorted((survivor_id, other_id))
        db.conn.execute("UPDATE possible_duplicates SET status = 'merged' WHERE a = ? AND b = ?", (a, b))
    merged = db.replica.get("customer", survivor_id)
    assert merged is not None  # checked above, and a merge deletes nothing
    return merged


def dismiss_duplicate(db: HQDatabase, a: str, b: str) -> None:
    a, b = sorted((a, b))
    with transaction(db.conn):
        db.conn.execute("UPDATE possible_duplicates SET status = 'dismissed' WHERE a = ? AND b = ? AND status = 'open'",
                        (a, b))
