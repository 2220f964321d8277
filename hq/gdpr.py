"""GDPR: everything HQ holds about a customer, and erasure.

Erasure blanks the personal fields with a normal HQ change, so it reaches
every replica (docs/protocol.md, rule 6); the record, its code, its sales
and its consent history stay, its cards are deactivated and its extra
field values blanked.
"""

from __future__ import annotations

from typing import Any

from hq.db import HQDatabase
from lanehub.domain.addresses import ADDRESS_FIELDS, ADDRESS_LINES, addresses_of
from lanehub.domain.extra_fields import extras_of
from lanehub.domain.sales import purchase_history
from lanehub.protocol.hlc import now_iso
from lanehub.replication.sqlite import transaction

PERSONAL = ("first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city", "postcode", "country",
            "contact", "notes")
ERASED_NAME = "(erased)"


def export_customer(db: HQDatabase, customer_id: str) -> dict[str, Any]:
    record = db.replica.get("customer", customer_id)
    conn = db.conn
    return {
        "customer": record,
        "cards": [dict(r) for r in conn.execute("SELECT number, kind, active FROM cards WHERE customer_id = ?",
                                                (customer_id,))],
        "consents": [dict(r) for r in conn.execute(
            "SELECT channel, granted, at, store, lane, [user] FROM consents WHERE customer_id = ? ORDER BY at",
            (customer_id,))],
        "addresses": [{name: row[name] for name in ADDRESS_FIELDS if name != "customer_id"}
                      for row in addresses_of(conn, customer_id, include_inactive=True)],
        "extra": extras_of(conn, customer_id),
        "household": db.replica.get("household", record["household_id"]) if record and record["household_id"] else None,
        "purchases": purchase_history(conn, customer_id, 10_000),
        "changes": [c.to_dict() for c in db.changes_for("customer", customer_id)],
        "exported_at": now_iso(),
    }


def erase_customer(db: HQDatabase, customer_id: str, by: str) -> dict[str, Any]:
    with transaction(db.conn):
        record = db.replica.get("customer", customer_id)
        if record is None:
            raise KeyError(customer_id)
        blank = {name: "" for name in PERSONAL} | {"first_name": ERASED_NAME, "last_name": ERASED_NAME,
                                                   "active": False, "no_paper": False,
                                                   "updated_at": now_iso(), "updated_by": by}
        db.write("customer", customer_id, blank, by)
        for (card,) in db.conn.execute("SELECT id FROM cards WHERE customer_id = ? AND active = 1",
                                       (customer_id,)).fetchall():
            db.write("card", card, {"active": False}, by)
        for (extra,) in db.conn.execute("SELECT id FROM customer_extras WHERE customer_id = ? AND value != ''",
                                        (customer_id,)).fetchall():
            db.write("customer_extra", extra, {"value": ""}, by)
        for (address,) in db.conn.execute("SELECT id FROM addresses WHERE customer_id = ?", (customer_id,)).fetchall():
            db.write("address", address, {"label": "", **{line: "" for line in ADDRESS_LINES}, "active": False,
                                          "preferred": False}, by)
        if db.replica.get("purchase_summary", customer_id) is not None:  # in every store: not kept there (D45)
            db.write("purchase_summary", customer_id, {"purchases": "[]"}, by)
    erased = db.replica.get("customer", customer_id)
    assert erased is not None  # checked above, and erasure deletes nothing
    return erased
