"""Lane tickets, priced at the edge (docs/protocol.md).

Every event (scan, card read, ticket command) runs in one SQLite transaction
that also records its id, so a redelivered event does nothing and a ticket
survives an edge restart: its truth is rows. The lines are also kept in memory
(edge.lane.ticket_state), so an event's change costs what the event changed.
The caller publishes the returned change only after that transaction has committed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable, Protocol

from edge.db import SALE_TICKET_NUMBER, EdgeDatabase
from edge.lane.settings import LaneSettings
from edge.lane.ticket_state import LineEdits, TicketStates
from lanehub.domain.addresses import address_for
from lanehub.domain.barcodes import GRAM, GS, BarcodeError, parse_scan, split_aim
from lanehub.domain.catalogue import CENT, money
from lanehub.domain.coupons import coupon_key, coupon_refusal, coupon_use_key, find_coupon
from lanehub.domain.model import display_name
from lanehub.domain.payment_cards import find_payment_card, mask, refusal
from lanehub.domain.pricing import PricingCustomer, SqliteCatalogue, unit_price
from lanehub.domain.sales import sale_key
from lanehub.protocol.change import new_id
from lanehub.protocol.hlc import now_iso
from lanehub.protocol.lane import (
    MAX_QTY,
    CardRead,
    Receipt,
    ReceiptCoupon,
    ReceiptCustomer,
    ReceiptLine,
    ReceiptTax,
    Scan,
    TicketChange,
    TicketCommand,
    TicketLine,
    TicketState,
    TicketWarning,
)
from lanehub.replication.sqlite import transaction

EVENT_MEMORY = 7 * 24 * 3600  # seconds an event id is remembered (redelivery happens within seconds)


@dataclass
class EventOutcome:
    """What an event did: the lane's ticket change to publish and receipts to print."""

    lane: str
    change: TicketChange | None = None
    jobs: list[tuple[str, str, Receipt]] = field(default_factory=list)  # (device, job id, receipt)
    duplicate: bool = False


class Refused(Exception):
    """An event the lane cannot carry out; becomes a warning in the state."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class CouponGate(Protocol):
    """HQ's say on a coupon: ``reserve`` returns 'online' or 'offline' (store policy)
    or raises Refused; ``release`` gives a reservation back, best effort."""

    def reserve(self, code: str, ticket: str, customer_id: str) -> str: ...

    def release(self, code: str, ticket: str) -> None: ...


class TicketBook:
    def __init__(self, db: EdgeDatabase, settings: LaneSettings, coupons: CouponGate,
                 printer_for: Callable[[str], str] | None = None, receipt_mail=None):
        """``printer_for(lane)``: the lane's receipt printer (edge.lane.bus routes by the
        devices' retained status), "" when the lane has none yet: the job waits to be
        routed; without it, the store's printer. ``receipt_mail``: edge.lane.mail.ReceiptMail;
        without it, e-mail receipts are kept unsent."""
        self.db = db
        self.conn = db.conn
        self.settings = settings
        self.coupons = coupons
        self.catalogue = SqliteCatalogue(db.conn)
        self.states = TicketStates(db.conn, db.replica)
        self.printer_for: Callable[[str], str] = printer_for or (lambda lane: settings.printer)
        self.receipt_mail = receipt_mail

    # --- events ---------------------------------------------------------------------------

    def scan(self, lane: str, scan: Scan) -> EventOutcome:
        def run(ctx: _Event) -> None:
            # A bank card's number or stripe read by the scanner is refused before anything
            # can keep it; a product the store sells is a product whatever its digits.
            self._refuse_payment_card(scan.code, scan.symbology)
            customer_id = self._owner_of(split_aim(scan.code)[1])  # a card's barcode may come AIM-prefixed too
            if customer_id:
                self._attach(ctx, customer_id)
            else:
                self._add(ctx, scan.code, "", Decimal(1), scan.symbology)
        return self._event(lane, scan.id, f"device:{scan.device}" if scan.device else "scanner", run)

    def card(self, lane: str, card: CardRead) -> EventOutcome:
        def run(ctx: _Event) -> None:
            customer_id = self._card_owner(card.card)
            if not customer_id:
                raise Refused("unknown_card", f"card {card.card} belongs to no customer")
            self._attach(ctx, customer_id)
        return self._event(lane, card.id, f"device:{card.device}" if card.device else "card reader", run)

    def _refuse_payment_card(self, code: str, symbology: str = "") -> None:
        """Refuse a payment card number (lanehub.domain.payment_cards) with its masked form only:
        the warning is kept in ``lanes.notices`` and published in the retained state.
        A code the catalogue sells (an EAN that happens to pass Luhn) is a product."""
        found = find_payment_card(code)
        if found and not self._sells(code, symbology):
            raise Refused("payment_card", refusal(mask(found)))

    def _sells(self, code: str, symbology: str) -> bool:
        """Is ``code`` a product of this store, read the way ``_add`` reads it?"""
        try:
            keys = parse_scan(code, symbology, self.settings.scale_layouts).lookup
        except BarcodeError:
            keys = (code,)
        return any(self.catalogue.product_by_code(key) is not None for key in keys)

    def command(self, lane: str, cmd: TicketCommand) -> EventOutcome:
        # Asking HQ about a coupon takes a network round trip: done before the
        # event's write transaction, so the store's other writers never wait on it.
        reservation = self._reserve_coupon(lane, cmd) if cmd.op == "apply_coupon" else None

        def run(ctx: _Event) -> None:
            if cmd.op == "open":
                if self._open_ticket(lane):
                    raise Refused("ticket_open", "a ticket is already open on this lane")
                self._new_ticket(ctx)
            elif cmd.op == "add":
                self._refuse_payment_card(cmd.code or cmd.sku)
                self._add(ctx, cmd.code, cmd.sku, cmd.quantity)
            elif cmd.op == "remove":
                self._remove(ctx, cmd.line)
            elif cmd.op == "set_customer":
                self._attach(ctx, self._resolve_customer(cmd))
            elif cmd.op == "clear_customer":
                ticket = self._need_open(lane)
                self._set_customer(ctx, ticket, "")
            elif cmd.op == "apply_coupon":
                if isinstance(reservation, Refused):
                    raise reservation
                assert reservation is not None  # reserved above for every apply_coupon
                ticket, code, mode = reservation
                if self._open_ticket(lane) != ticket:  # closed or voided meanwhile
                    self.coupons.release(code, ticket)
                    raise Refused("no_open_ticket", "there is no open ticket on this lane")
                self.conn.execute("UPDATE tickets SET coupon = ?, coupon_mode = ? WHERE ticket = ?", (code, mode, ticket))
            elif cmd.op == "close":
                self._close(ctx, cmd.email)
            elif cmd.op == "void":
                ticket = self._need_open(lane)
                self._drop_coupon(ticket)
                self.conn.execute("UPDATE tickets SET status = 'void', closed_at = ? WHERE ticket = ?", (now_iso(), ticket))
        return self._event(lane, cmd.id, cmd.user or f"lane:{lane}", run)

    def _event(self, lane: str, event_id: str, by: str, run) -> EventOutcome:
        """One event on its own savepoint: inside the caller's transaction (a batch,
        see ``edge.lane.bus``), or in a transaction of its own."""
        if not self.conn.in_transaction:
            with transaction(self.conn):
                return self._event(lane, event_id, by, run)
        if by.startswith("device:"):
            self.conn.execute("UPDATE device_status SET last_read = ? WHERE device = ?", (time.time(), by[7:]))
        ctx = _Event(lane, event_id, by)
        self.conn.execute("SAVEPOINT lane_event")
        try:
            seen = self.conn.execute("INSERT OR IGNORE INTO lane_events (id, lane, at) VALUES (?, ?, ?)",
                                     (event_id, lane, time.time()))
            if seen.rowcount == 0:
                self.conn.execute("RELEASE lane_event")
                return EventOutcome(lane, duplicate=True)
            self._lane_row(lane)
            self._retire_sold_ticket(lane)
            self.conn.execute("SAVEPOINT event")
            try:
                run(ctx)
            except Refused as refused:
                self.conn.execute("ROLLBACK TO event")  # a refused event changes nothing but the notice
                ctx.notices.append(TicketWarning(code=refused.code, message=refused.message))
                ctx.edits.clear()
            self.conn.execute("RELEASE event")
            self.conn.execute("UPDATE lanes SET notices = ?, cause = ?, seq = seq + 1 WHERE lane = ?",
                              (json.dumps([notice.to_dict() for notice in ctx.notices]), event_id, lane))
            if ctx.edits.ticket is not None:
                self.states.apply(lane, ctx.edits.ticket, ctx.edits)
            change = self.states.change(lane, self.settings, ctx.edits)
        except BaseException:
            self.conn.execute("ROLLBACK TO lane_event")  # this event only; the batch goes on
            self.conn.execute("RELEASE lane_event")
            self.states.forget(lane)  # the kept lines may hold what was just rolled back
            raise
        self.conn.execute("RELEASE lane_event")
        return EventOutcome(lane, change, ctx.jobs)

    def batch(self):
        """One transaction (one fsync) for several events: under load the lane
        worker commits what has queued up together, and publishes after."""
        return transaction(self.conn)

    def forget_kept(self) -> None:
        """A batch's commit failed: the kept lines may hold what it rolled back."""
        self.states.forget()

    # --- ops ---------------------------------------------------------------------------------

    def _add(self, ctx: "_Event", code: str, sku: str, qty: Decimal, symbology: str = "") -> None:
        """A line for a code (read by lanehub.domain.barcodes) or a SKU. A weight on the label (scale
        label, AI 310n/320n) is the line's qty in kg; a price on it (AI 392n/393n, $ digits)
        is the line's amount, kept in ``label_price`` so no re-pricing changes it."""
        scanned = None
        if code:
            try:
                scanned = parse_scan(code, symbology, self.settings.scale_layouts)
            except BarcodeError as exc:
                raise Refused("bad_code", f"code {code.replace(GS, '<GS>')}: {exc}") from None
            shown = scanned.code.replace(GS, "<GS>")
            product = None
            for key in scanned.lookup:
                product = self.catalogue.product_by_code(key)
                if product is not None:
                    break
            if product is None:
                tried = "" if scanned.lookup == (scanned.code,) else f" (looked up as {', '.join(scanned.lookup)})"
                raise Refused("unknown_code", f"no product with code {shown}{tried}")
            if scanned.measured and qty != 1:
                raise Refused("label_qty", f"code {shown} is one item as labelled: add it once per item")
            if scanned.currency and scanned.currency != self.settings.currency:
                raise Refused("bad_code", f"code {shown}: its price is in {scanned.currency}, "
                                          f"this store sells in {self.settings.currency}")
        else:
            product = self.catalogue.product_by_code(sku)
            if product is None:
                raise Refused("unknown_code", f"no product with code {sku}")
        ticket = self._open_ticket(ctx.lane) or self._new_ticket(ctx)
        price = unit_price(product, self._pricing_customer(ticket), self.settings.store, date.today(), self.catalogue)
        label_price = money(scanned.price) if scanned is not None and scanned.price is not None else None
        if scanned is not None and scanned.weight is not None:
            qty = scanned.weight.quantize(GRAM, ROUND_HALF_UP)
        elif scanned is not None and scanned.count is not None:
            qty = qty * scanned.count
        elif label_price is not None:
            # A price-only scale label: the weight the scale priced, at the store's retail
            # price per kg (the scale knows no customer), so the receipt shows it.
            qty = (label_price / price.retail).quantize(GRAM, ROUND_HALF_UP) if price.retail > 0 else Decimal(1)
        if not 0 < qty <= MAX_QTY:
            raise Refused("bad_code", f"code {(code or sku).replace(GS, '<GS>')}: quantity {qty} is not above 0 "
                                      f"and at most {MAX_QTY}")
        on_ticket = len(self.states.live(ctx.lane, ticket).lines)
        if on_ticket >= self.settings.max_ticket_lines:
            raise Refused("ticket_full", f"ticket {ticket} has {on_ticket:,} lines, the most this store allows "
                                         f"([store] max_ticket_lines): close it and go on with a new ticket")
        line = self.conn.execute("SELECT coalesce(max(line), 0) + 1 FROM ticket_lines WHERE ticket = ?", (ticket,)).fetchone()[0]
        barcode = scanned.code if scanned is not None and scanned.code != product.sku else ""
        amount, unit, source = money(price.unit * qty), price.unit, price.source
        if label_price is not None:  # the label's price is the amount; retail per kg, for the receipt
            amount, unit, source = label_price, price.retail, "label"
        self.conn.execute(
            "INSERT INTO ticket_lines (ticket, line, product_id, sku, barcode, description, brand, size, tax_rate, qty, "
            "unit_price, retail_price, price_source, amount, label_price) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ticket, line, product.id, product.sku, barcode, product.description,
             product.brand, product.size, str(product.tax_rate), str(qty), str(unit), str(price.retail),
             source, str(amount), "" if label_price is None else str(label_price)),
        )
        ctx.edits.write(ticket, TicketLine(line=line, sku=product.sku, barcode=barcode, description=product.description,
                                           qty=str(qty), unit_price=str(unit), retail_price=str(price.retail),
                                           price_source=source, amount=str(amount)))

    def _remove(self, ctx: "_Event", line: int) -> None:
        ticket = self._need_open(ctx.lane)
        cursor = self.conn.execute("UPDATE ticket_lines SET removed = 1 WHERE ticket = ? AND line = ? AND removed = 0",
                                   (ticket, line))
        if cursor.rowcount == 0:
            raise Refused("unknown_line", f"ticket {ticket} has no line {line}")
        ctx.edits.remove(ticket, line)

    def _attach(self, ctx: "_Event", customer_id: str) -> None:
        customer = self.db.replica.get("customer", customer_id)
        if customer is None:
            raise Refused("unknown_customer", "no such customer in this store")
        name = f"{customer['code']} {display_name(customer)}"
        if not customer["active"]:
            raise Refused("customer_inactive", f"customer {name} is deactivated")
        if customer["status"] == "closed":
            raise Refused("customer_closed", f"customer {name} is closed and cannot be attached to a ticket")
        if customer["payment_status"] == "defaulter" and self.settings.block_defaulters:
            raise Refused("customer_blocked", f"customer {name} is a defaulter; this store does not serve defaulters")
        ticket = self._open_ticket(ctx.lane) or self._new_ticket(ctx)
        self._set_customer(ctx, ticket, customer_id)

    def _set_customer(self, ctx: "_Event", ticket: str, customer_id: str) -> None:
        """Attach (or clear) the customer and re-price every line for them (the one
        event whose work grows with the ticket); the change carries the lines whose
        price moved. A coupon belongs to the customer it was accepted for: another
        customer drops it."""
        current = self.conn.execute("SELECT customer_id FROM tickets WHERE ticket = ?", (ticket,)).fetchone()[0]
        if current != customer_id:
            self._drop_coupon(ticket)
        self.conn.execute("UPDATE tickets SET customer_id = ? WHERE ticket = ?", (customer_id, ticket))
        who = self._pricing_customer(ticket)
        today = date.today()
        for row in self.conn.execute("SELECT * FROM ticket_lines WHERE ticket = ? AND removed = 0", (ticket,)).fetchall():
            if row["label_price"]:
                continue  # the label's price is what that item costs, whoever buys it
            product = self.catalogue.product(row["product_id"])
            if product is None:
                continue
            price = unit_price(product, who, self.settings.store, today, self.catalogue)
            repriced = {"unit_price": str(price.unit), "retail_price": str(price.retail), "price_source": price.source,
                        "amount": str(money(price.unit * Decimal(row["qty"])))}
            if all(row[key] == value for key, value in repriced.items()):
                continue
            self.conn.execute(
                "UPDATE ticket_lines SET unit_price = ?, retail_price = ?, price_source = ?, amount = ? "
                "WHERE ticket = ? AND line = ?",
                (repriced["unit_price"], repriced["retail_price"], repriced["price_source"], repriced["amount"],
                 ticket, row["line"]),
            )
            ctx.edits.write(ticket, TicketLine.from_dict(dict(row) | repriced))

    def _close(self, ctx: "_Event", email: str = "") -> None:
        ticket = self._need_open(ctx.lane)
        state = self.state(ctx.lane)
        if not state.lines:
            raise Refused("empty_ticket", "an empty ticket cannot be closed (void it instead)")
        closed_at = now_iso()
        self.conn.execute("UPDATE tickets SET status = 'closed', closed_at = ?, by = ? WHERE ticket = ?",
                          (closed_at, ctx.by, ticket))
        customer = self.db.replica.get("customer", state.customer.id) if state.customer else None
        # The sale's lines: the state's, with what the receipt and HQ need beyond them.
        extras = self._line_extras(ticket)
        sale_lines = [line.to_dict() | extras[line.line] for line in state.lines]
        coupon = state.coupon
        self.db.write("sale", sale_key(ticket), {
            "ticket": ticket, "store": self.settings.store, "lane": ctx.lane, "customer_id": customer["id"] if customer else "",
            "closed_at": closed_at, "total": state.total, "currency": self.settings.currency,
            "lines": json.dumps(sale_lines, separators=(",", ":")), "coupon": coupon.code if coupon else "", "by": ctx.by,
        }, ctx.by)
        if coupon:  # the redemption: through the outbox, so it reaches HQ whatever happens next
            coupon_id = coupon_key(coupon.code)
            self.db.write("coupon_use", coupon_use_key(coupon_id, ticket), {
                "coupon_id": coupon_id, "ticket": ticket, "store": self.settings.store, "at": closed_at,
                "mode": coupon.mode or "online", "discount": coupon.discount}, ctx.by)
        receipt = self._receipt(ticket, ctx.lane, closed_at, sale_lines, state, customer)
        job = new_id()
        # No paper: the customer asked for e-mailed receipts, or the till took an
        # address for this one receipt.
        status = "email" if email or (customer and customer["no_paper"]) else "pending"
        mail = self.receipt_mail  # a book without one keeps the receipt unsent
        if status == "email" and mail is not None:
            # Queued in this transaction: never lost, never sent before the close commits.
            # No address, or e-mail not configured with email_fallback = "print": printed.
            address = email or (customer["email"] if customer else "") or ""
            status = mail.route(self.conn, ctx.lane, job, receipt, address, ctx.notices)
        device = self.printer_for(ctx.lane) if status == "pending" else ""
        self.conn.execute(
            "INSERT INTO print_jobs (job, ticket, lane, device, receipt, status, created_at, email) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job, ticket, ctx.lane, device, json.dumps(receipt.to_dict()), status, time.time(), email),
        )
        if status == "pending":
            ctx.jobs.append((device, job, receipt))

    def _line_extras(self, ticket: str) -> dict[int, dict[str, str]]:
        """Each line's product id, brand, size and tax rate (the sale's, the receipt's)."""
        return {row[0]: {"product_id": row[1], "brand": row[2], "size": row[3], "tax_rate": row[4]} for row in
                self.conn.execute("SELECT line, product_id, brand, size, tax_rate FROM ticket_lines WHERE ticket = ?",
                                  (ticket,))}

    def _receipt(self, ticket: str, lane: str, closed_at: str, lines: list[dict], state: TicketState,
                 customer: dict | None) -> Receipt:
        total, subtotal = Decimal(state.total), Decimal(state.subtotal)
        share = total / subtotal if subtotal else Decimal(1)  # a coupon lowers every tax base alike
        taxes: dict[str, Decimal] = {}
        for line in lines:
            taxes[line["tax_rate"]] = taxes.get(line["tax_rate"], Decimal(0)) + Decimal(line["amount"])
        tax_lines = []
        for rate, gross in sorted(taxes.items(), key=lambda kv: Decimal(kv[0])):
            gross = money(gross * share)
            base = money(gross / (1 + Decimal(rate) / 100))
            tax_lines.append(ReceiptTax(rate=rate, base=str(base), tax=str((gross - base).quantize(CENT)), total=str(gross)))
        shown = None
        if customer and self.settings.receipt_shows_customer:
            address = address_for(self.conn, customer, "billing") if self.settings.receipt_invoice_address else ""
            shown = ReceiptCustomer(code=customer["code"], name=display_name(customer), tax_id=customer["tax_id"],
                                    address=address)
        s = self.settings
        return Receipt(
            store=s.receipt_store, ticket=ticket, lane=lane, closed_at=closed_at,
            lines=tuple(ReceiptLine.from_dict(line) for line in lines),  # the sale line's keys of those names
            subtotal=state.subtotal, total=state.total, currency=s.currency, taxes=tuple(tax_lines),
            coupon=ReceiptCoupon(code=state.coupon.code, discount=state.coupon.discount) if state.coupon else None,
            customer=shown, barcode=ticket, footer=s.footer,
        )

    # --- coupons -------------------------------------------------------------------------------

    def _reserve_coupon(self, lane: str, cmd: TicketCommand):
        """(ticket, code, mode) when the coupon may go on the lane's ticket, else a Refused."""
        row = self.conn.execute("SELECT ticket, customer_id, coupon FROM tickets WHERE lane = ? AND status = 'open'",
                                (lane,)).fetchone()
        if row is None:
            return Refused("no_open_ticket", "there is no open ticket on this lane")
        if row["coupon"]:
            return Refused("coupon_applied", f"ticket {row['ticket']} already has coupon {row['coupon']}")
        coupon = find_coupon(self.conn, cmd.coupon)
        customer = self.db.replica.get("customer", row["customer_id"]) if row["customer_id"] else None
        reason = coupon_refusal(self.conn, coupon, customer, date.today(), row["ticket"])
        if reason:
            return Refused("coupon_refused", reason)
        assert coupon is not None and customer is not None  # coupon_refusal refuses either missing
        try:
            mode = self.coupons.reserve(coupon["code"], row["ticket"], customer["id"])
        except Refused as refused:
            return refused
        return row["ticket"], coupon["code"], mode

    def _drop_coupon(self, ticket: str) -> None:
        code = self.conn.execute("SELECT coupon FROM tickets WHERE ticket = ?", (ticket,)).fetchone()[0]
        if code:
            self.conn.execute("UPDATE tickets SET coupon = '', coupon_mode = '' WHERE ticket = ?", (ticket,))
            self.coupons.release(code, ticket)

    # --- lookups -----------------------------------------------------------------------------

    def _card_owner(self, number: str) -> str | None:
        """The customer a card belongs to. A payment card number is refused here, so no
        caller can echo it ("card ... belongs to no customer") or look it up."""
        self._refuse_payment_card(number)
        return self._owner_of(number)

    def _owner_of(self, number: str) -> str | None:
        row = self.conn.execute("SELECT customer_id FROM cards WHERE number = ? AND active = 1 LIMIT 1",
                                (number.strip().upper(),)).fetchone()
        return row[0] if row else None

    def _resolve_customer(self, cmd: TicketCommand) -> str:
        self._refuse_payment_card(cmd.code or cmd.customer_id)  # "no customer ..." would echo it
        if cmd.card:
            found = self._card_owner(cmd.card)
            if not found:
                raise Refused("unknown_card", f"card {cmd.card} belongs to no customer")
            return found
        record = self.db.replica.find_customer(cmd.code or cmd.customer_id)
        if record is None:
            raise Refused("unknown_customer", f"no customer {cmd.code or cmd.customer_id}")
        return record["id"]

    def _pricing_customer(self, ticket: str) -> PricingCustomer | None:
        row = self.conn.execute("SELECT c.id, c.rate FROM tickets t JOIN customers c ON c.id = t.customer_id "
                                "WHERE t.ticket = ?", (ticket,)).fetchone()
        return PricingCustomer(id=row[0], rate=row[1] or "") if row else None

    # --- tickets and lanes ----------------------------------------------------------------------

    def _lane_row(self, lane: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO lanes (lane, last_n) VALUES (?, 0)", (lane,))

    def _last_number(self, lane: str) -> int:
        """The highest ticket number this lane is known to have used: its counter, its
        own tickets, and its sales in the replica. A database older than what HQ has
        (a restored backup) or a new one (a replaced box) has a counter behind the
        sales that came back down from HQ; a number already sold would be refused by
        HQ (a sale never changes) and the new sale lost. Three index lookups."""
        return self.conn.execute(
            f"SELECT max(coalesce((SELECT last_n FROM lanes WHERE lane = ?), 0), "
            f"(SELECT coalesce(max(n), 0) FROM tickets WHERE lane = ?), "
            f"(SELECT coalesce(max({SALE_TICKET_NUMBER}), 0) FROM sales WHERE store = ? AND lane = ?))",
            (lane, lane, self.settings.store, lane)).fetchone()[0]

    def _retire_sold_ticket(self, lane: str) -> None:
        """A ticket open in a restored backup may have been closed after the backup: its
        sale came back from HQ. It is done, so it is voided (not carried on, which would
        sell its number again); the event then works on a new ticket. A closed ticket
        writes its sale in the same transaction, so otherwise an open ticket has none."""
        ticket = self._open_ticket(lane)
        if ticket and self.conn.execute("SELECT 1 FROM sales WHERE id = ?", (sale_key(ticket),)).fetchone():
            self.conn.execute("UPDATE tickets SET status = 'void', closed_at = ? WHERE ticket = ?", (now_iso(), ticket))

    def _open_ticket(self, lane: str) -> str | None:
        row = self.conn.execute("SELECT ticket FROM tickets WHERE lane = ? AND status = 'open' LIMIT 1", (lane,)).fetchone()
        return row[0] if row else None

    def _need_open(self, lane: str) -> str:
        ticket = self._open_ticket(lane)
        if ticket is None:
            raise Refused("no_open_ticket", "there is no open ticket on this lane")
        return ticket

    def _new_ticket(self, ctx: "_Event") -> str:
        n = self._last_number(ctx.lane) + 1
        self.conn.execute("UPDATE lanes SET last_n = ? WHERE lane = ?", (n, ctx.lane))
        ticket = f"{self.settings.store}-{ctx.lane}-{n}"
        self.conn.execute("INSERT INTO tickets (ticket, lane, n, status, opened_at, by) VALUES (?, ?, ?, 'open', ?, ?)",
                          (ticket, ctx.lane, n, now_iso(), ctx.by))
        self.conn.execute("UPDATE lanes SET current = ? WHERE lane = ?", (ticket, ctx.lane))
        return ticket

    def state(self, lane: str) -> TicketState:
        """The lane's whole ticket state as docs/protocol.md gives it."""
        return self.states.state(lane, self.settings)

    def lanes(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT lane FROM lanes ORDER BY lane")]

    def forget_old_events(self) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM lane_events WHERE at < ?", (time.time() - EVENT_MEMORY,))


@dataclass
class _Event:
    lane: str
    id: str
    by: str
    notices: list[TicketWarning] = field(default_factory=list)
    edits: LineEdits = field(default_factory=LineEdits)
    jobs: list[tuple[str, str, Receipt]] = field(default_factory=list)

