"""Purging payment card numbers that lanehub kept before every entry refused
them (lanehub.domain.payment_cards; docs/decisions.md D38). Run once by a migration of
each site's database (``edge/db.py`` m010, ``hq/db.py`` m006), inside that
migration's transaction.

A card record is never deleted by replication (records are only ever changed),
so the erasure is a change like any other: HQ masks the number and deactivates
the card with a change of its own (``by`` ``hq:payment-card-purge``), which
every replica applies, an edge that was offline through catch-up, a new box
through its snapshot; HQ's log is rewritten too, so replaying it from the start
never brings the number back. A number typed into a customer's text field (the
notes, a street) is masked the same way: an HQ change per customer, the log
rewritten. An edge does the same to its own copy at once,
without waiting for HQ, and drops its unsent card changes that carry one (HQ
never saw them). What else held a number is scrubbed in place: rejections
(their change and reason) and, at a store, the lanes' last notices.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lanehub.domain.model import CUSTOMER_EDITABLE
from lanehub.domain.payment_cards import find_payment_card, is_payment_card, mask, redact
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.hlc import ZERO, HybridLogicalClock
from lanehub.replication.replica import Replica

BY = "hq:payment-card-purge"

# Card numbers are stored upper-cased, letters, digits and '-' only (lanehub.domain.model):
# only those of 13-19 digits, dashes aside, can be payment cards.
_CANDIDATES = ("SELECT id, number FROM cards WHERE length(replace(number, '-', '')) BETWEEN 13 AND 19 "
               "AND replace(number, '-', '') NOT GLOB '*[^0-9]*'")


@contextmanager
def _zeroing(conn: sqlite3.Connection) -> Iterator[None]:
    """Deleted and rewritten content is overwritten with zeros, not left in free
    space of the file (many builds do this already; some do not)."""
    before = conn.execute("PRAGMA secure_delete").fetchone()[0]
    conn.execute("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(before)}")


def payment_card_rows(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(card id, number) of every card whose number is a payment card."""
    return [(row[0], row[1]) for row in conn.execute(_CANDIDATES) if is_payment_card(row[1])]


def _scrub_rejections(conn: sqlite3.Connection) -> None:
    for change_id, reason, change in conn.execute("SELECT change_id, reason, change FROM rejections").fetchall():
        if find_payment_card(reason) or find_payment_card(change):
            conn.execute("UPDATE rejections SET reason = ?, change = ? WHERE change_id = ?",
                         (redact(reason), redact(change), change_id))


def _masked_text(fields: dict[str, Any]) -> dict[str, Any]:
    """The text fields of ``fields`` that hold a payment card, masked (``redact``)."""
    return {name: redact(value) for name, value in fields.items()
            if isinstance(value, str) and find_payment_card(value)}


def customers_with_cards(conn: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
    """(customer id, {field: masked text}) of every customer with a card number in a text field."""
    columns = [name for name in CUSTOMER_EDITABLE if name != "no_paper"]
    out = []
    for row in conn.execute(f"SELECT id, {', '.join(columns)} FROM customers").fetchall():
        masked = _masked_text(dict(zip(columns, row[1:])))
        if masked:
            out.append((row[0], masked))
    return out


def _masked_number(fields: dict[str, Any]) -> dict[str, Any] | None:
    number = fields.get("number")
    if isinstance(number, str) and is_payment_card(number):
        return fields | {"number": mask(number)}
    return None


def purge_hq(conn: sqlite3.Connection) -> int:
    """HQ: erase every stored payment card (a logged change per card), mask the
    numbers in the change log, scrub rejections. Returns the cards erased."""
    with _zeroing(conn):
        return _purge_hq(conn)


def _purge_hq(conn: sqlite3.Connection) -> int:
    cards = payment_card_rows(conn)
    customers = customers_with_cards(conn)
    if cards or customers:
        last = conn.execute("SELECT max(hlc) FROM changes").fetchone()[0] or ZERO
        clock = HybridLogicalClock(last=last)
        replica = Replica(conn)
        erasures = [("card", key, {"number": mask(number), "active": False}) for key, number in cards]
        erasures += [("customer", key, masked) for key, masked in customers]
        for entity, key, fields in erasures:
            change = Change(new_id(), entity, key, "hq", clock.now(), BY, fields)
            replica.apply(change)
            conn.execute(
                "INSERT INTO changes (id, entity, key, origin, hlc, by, fields, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (change.id, change.entity, change.key, change.origin, change.hlc, change.by,
                 json.dumps(change.fields, separators=(",", ":")), time.time()))
    for seq, fields in conn.execute("SELECT seq, fields FROM changes WHERE entity = 'card'").fetchall():
        masked = _masked_number(json.loads(fields))
        if masked is not None:
            conn.execute("UPDATE changes SET fields = ? WHERE seq = ?", (json.dumps(masked, separators=(",", ":")), seq))
    for seq, text in conn.execute("SELECT seq, fields FROM changes WHERE entity = 'customer'").fetchall():
        fields = json.loads(text)
        masked = _masked_text(fields)
        if masked:
            conn.execute("UPDATE changes SET fields = ? WHERE seq = ?",
                         (json.dumps(fields | masked, separators=(",", ":")), seq))
    _scrub_rejections(conn)
    return len(cards)


def purge_edge(conn: sqlite3.Connection) -> int:
    """A store: mask and deactivate every stored payment card (HQ's erasure, when
    it comes, sets the same), drop unsent card changes carrying one, scrub
    rejections and the lanes' notices. Returns the cards purged."""
    with _zeroing(conn):
        return _purge_edge(conn)


def _purge_edge(conn: sqlite3.Connection) -> int:
    unsent: dict[str, list[int]] = {}  # card id -> its outbox rows
    carrying: set[str] = set()  # cards with an unsent change that carries a payment card number
    for n, text in conn.execute("SELECT n, change FROM outbox").fetchall():
        change = json.loads(text)
        if change.get("entity") == "card":
            unsent.setdefault(change.get("key", ""), []).append(n)
            if _masked_number(change.get("fields") or {}) is not None:
                carrying.add(change.get("key", ""))
    cards = payment_card_rows(conn)
    for key, number in cards:
        if key in carrying:
            # HQ never acknowledged it: it never was anywhere else (if it was and the ack
            # was lost, HQ's own purge sends the erasure).
            conn.execute("DELETE FROM cards WHERE id = ?", (key,))
        else:
            conn.execute("UPDATE cards SET number = ?, active = 0 WHERE id = ?", (mask(number), key))
    for key in carrying:
        conn.executemany("DELETE FROM outbox WHERE n = ?", [(n,) for n in unsent[key]])
    for key, masked in customers_with_cards(conn):
        conn.execute(f"UPDATE customers SET {', '.join(f'{name} = ?' for name in masked)} WHERE id = ?",
                     (*masked.values(), key))
    for n, text in conn.execute("SELECT n, change FROM outbox").fetchall():
        change = json.loads(text)
        masked = _masked_text(change.get("fields") or {}) if change.get("entity") == "customer" else {}
        if masked:  # still sent (the edit happened), without the number
            change["fields"] |= masked
            conn.execute("UPDATE outbox SET change = ? WHERE n = ?", (json.dumps(change), n))
    _scrub_rejections(conn)
    for lane, notices in conn.execute("SELECT lane, notices FROM lanes").fetchall():
        if find_payment_card(notices):
            clean = [{k: redact(v) for k, v in notice.items()} for notice in json.loads(notices)]
            conn.execute("UPDATE lanes SET notices = ? WHERE lane = ?", (json.dumps(clean), lane))
    return len(cards)
