"""Each lane's ticket state, kept up to date event by event (docs/protocol.md §18,
decisions D48).

The lane worker keeps every lane's current ticket lines and subtotal in memory
beside the database, so an event costs what it changes: its lines are applied to
the kept ones, and its ``TicketChange`` carries them and the running totals; no
event reads the ticket's lines back. The rows stay the truth: the lines are read
from them once per ticket and edge run (or after a failed transaction, when the
kept copy is dropped), and a new ticket starts empty. The small fields (status,
customer, coupon, notices) are read per event: a few indexed rows, and a customer
or coupon edited meanwhile (replication) shows at once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from edge.lane.settings import LaneSettings
from lanehub.domain.catalogue import money
from lanehub.domain.coupons import coupon_discount, find_coupon
from lanehub.domain.model import display_name
from lanehub.protocol.lane import TicketChange, TicketCoupon, TicketCustomer, TicketLine, TicketState, TicketWarning
from lanehub.replication.replica import Replica


@dataclass
class LiveTicket:
    """A ticket's lines on the ticket (removed ones left out) and their sum."""

    ticket: str | None
    lines: dict[int, TicketLine] = field(default_factory=dict)  # by line number, in line order
    subtotal: Decimal = Decimal(0)


@dataclass
class LineEdits:
    """The lines one event wrote or removed (of one ticket), applied to the kept ticket
    once the event is done."""

    ticket: str | None = None
    written: dict[int, TicketLine] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    def write(self, ticket: str, line: TicketLine) -> None:
        self.ticket = ticket
        self.written[line.line] = line
        self.removed.discard(line.line)

    def remove(self, ticket: str, number: int) -> None:
        self.ticket = ticket
        self.written.pop(number, None)
        self.removed.add(number)

    def clear(self) -> None:
        self.ticket = None
        self.written.clear()
        self.removed.clear()


class TicketStates:
    def __init__(self, conn: sqlite3.Connection, replica: Replica):
        self.conn = conn
        self.replica = replica
        self._live: dict[str, LiveTicket] = {}  # lane -> its current ticket

    def live(self, lane: str, ticket: str | None) -> LiveTicket:
        """The kept lines of ``ticket``, the lane's current one; read from its rows when
        the lane's kept ticket is another (a new ticket has none yet: one indexed seek)."""
        kept = self._live.get(lane)
        if kept is None or kept.ticket != ticket:
            kept = LiveTicket(ticket)
            if ticket is not None:
                for row in self.conn.execute("SELECT * FROM ticket_lines WHERE ticket = ? AND removed = 0 ORDER BY line",
                                             (ticket,)):
                    line = TicketLine.from_dict(dict(row))  # the row's columns of those names
                    kept.lines[line.line] = line
                    kept.subtotal += Decimal(line.amount)
            self._live[lane] = kept
        return kept

    def apply(self, lane: str, ticket: str | None, edits: LineEdits) -> None:
        """An event's lines, once it is done (its savepoint released). Applying twice is
        harmless: a line read from rows that already hold the edit changes the sum by 0."""
        kept = self.live(lane, ticket)
        for number in edits.removed:
            gone = kept.lines.pop(number, None)
            if gone is not None:
                kept.subtotal -= Decimal(gone.amount)
        for number, line in edits.written.items():
            before = kept.lines.get(number)
            kept.subtotal += Decimal(line.amount) - (Decimal(before.amount) if before else 0)
            kept.lines[number] = line

    def forget(self, lane: str | None = None) -> None:
        """Drop the kept lines (of one lane, or all): read again from the rows next time.
        After a rolled-back event or a failed commit, where memory may be ahead of them."""
        if lane is None:
            self._live.clear()
        else:
            self._live.pop(lane, None)

    def _fields(self, lane: str, settings: LaneSettings) -> tuple[dict[str, Any], LiveTicket]:
        """The fields a state and a change share, and the lane's kept ticket."""
        row = self.conn.execute("SELECT current, notices, cause, seq FROM lanes WHERE lane = ?", (lane,)).fetchone()
        warnings = list(TicketWarning.list_from(json.loads(row["notices"]), "notices")) if row else []
        fields: dict[str, Any] = {"store": settings.store, "lane": lane, "currency": settings.currency,
                                  "cause": row["cause"] if row else "", "seq": row["seq"] if row else 0}
        ticket = self.conn.execute("SELECT * FROM tickets WHERE ticket = ?", (row["current"],)).fetchone() if row else None
        if ticket is None:
            return fields | {"warnings": tuple(warnings)}, self.live(lane, None)
        kept = self.live(lane, ticket["ticket"])
        shown = None
        if ticket["customer_id"]:
            customer = self.replica.get("customer", ticket["customer_id"])
            if customer:
                shown = TicketCustomer(id=customer["id"], code=customer["code"], name=display_name(customer),
                                       payment_status=customer["payment_status"], tax_id=customer["tax_id"])
                if customer["payment_status"] in ("pending", "defaulter"):
                    warnings.append(TicketWarning(code=f"payment_{customer['payment_status']}",
                                                  message=f"customer payment status is {customer['payment_status']}"))
        discount = Decimal(0)
        applied = None
        if ticket["coupon"]:
            coupon = find_coupon(self.conn, ticket["coupon"])
            assert coupon is not None  # a ticket's coupon was found when it was applied; coupons are never deleted
            discount = coupon_discount(coupon["kind"], coupon["value"], kept.subtotal)
            applied = TicketCoupon(code=coupon["code"], kind=coupon["kind"], value=coupon["value"],
                                   discount=str(discount), mode=ticket["coupon_mode"])
        return fields | {"ticket": ticket["ticket"], "status": ticket["status"], "customer": shown,
                         "warnings": tuple(warnings), "subtotal": str(money(kept.subtotal)), "coupon": applied,
                         "total": str(money(kept.subtotal - discount))}, kept

    def state(self, lane: str, settings: LaneSettings) -> TicketState:
        """The lane's whole ticket: the retained ``ticket/state`` (O(lines): published
        at most once a second per lane, edge.lane.bus)."""
        fields, kept = self._fields(lane, settings)
        return TicketState(**fields, lines=tuple(kept.lines.values()))

    def change(self, lane: str, settings: LaneSettings, edits: LineEdits) -> TicketChange:
        """What the lane's last event did, its edits already applied."""
        fields, kept = self._fields(lane, settings)
        return TicketChange(**fields, lines=tuple(edits.written[n] for n in sorted(edits.written)),
                            removed=tuple(sorted(edits.removed)), line_count=len(kept.lines))
