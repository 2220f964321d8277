"""The lanes' tickets on the store broker: scans, card reads and ticket
commands in; ticket changes, retained ticket states and receipt jobs out
(docs/protocol.md §18, decisions D48).

Everything runs on the edge's lane worker, one event at a time, so a lane's
events apply in the order the broker delivered them. Lanes take turns
(edge.lane.turns), so one lane's flood does not hold up another's scans.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from edge.lane.printer_book import PrinterBook
from edge.lane.printers import PrinterRoutes, is_known_printer, printer_for
from edge.lane.settings import LaneSettings, apply_settings, stored_settings
from edge.lane.tickets import CouponGate, EventOutcome, TicketBook
from edge.lane.turns import LaneTurns
from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import DEVICE_SILENT_AFTER, CardRead, DeviceStatus, PrintJob, PrintResult, Scan, TicketCommand
from lanehub.runtime.mqtt import Incoming, MqttClient
from lanehub.runtime.report import publish_report
from lanehub.runtime.worker import Worker

log = logging.getLogger(__name__)

MAX_BATCH = 64  # events per transaction under load
# A batch stops taking events after this long, so an event of another lane that
# arrives meanwhile waits for little more than one short transaction (D48). Long
# enough that the commit's fsync stays a small share of a busy lane's time.
BATCH_BUDGET = 0.004
# A lane's whole state (retained) goes out at most this often while its ticket
# changes, and this long after its last change at most: lane clients follow the
# changes and need it only to start or after missing one.
STATE_EVERY = 1.0
# Up to this many lines the whole state also goes out after every change, as DESIGN §4
# has it (an ordinary ticket's state is a few KB); past it only the change does, and
# the state follows at most every STATE_EVERY (D48).
STATE_EVERY_CHANGE_LINES = 100


class TicketLanes:
    def __init__(self, local: MqttClient, worker: Worker, settings: LaneSettings, report, print_retry: float,
                 coupons: CouponGate, routes: PrinterRoutes | None = None, receipt_mail=None):
        """``routes``: edge.toml's printers (``PrinterRoutes.from_config``; without them, the
        store's printer only). ``receipt_mail``: edge.lane.mail.ReceiptMail, given to the
        ticket book (without it, e-mail receipts are kept unsent)."""
        self.local = local
        self.routes = routes or PrinterRoutes(fallback=settings.printer)
        self.receipt_mail = receipt_mail
        # Told once on the error topic (until it changes): lanes without a printer,
        # printers receipts go to that no bridge has ever reported as.
        self._told_no_printer: set[str] = set()
        self._told_unknown_printer: set[str] = set()
        self.coupons = coupons
        self.worker = worker
        self.settings = settings
        self.report = report  # report(msg, reason): the error topic
        self.print_retry = print_retry
        self._book: TicketBook | None = None  # opened by start(), on the lane worker
        self._printers: PrinterBook | None = None  # likewise
        self.events = LaneTurns()  # filled by paho's thread, drained by the worker
        self._drain_lock = threading.Lock()
        self._drain_queued = False  # one drain waits on the worker at a time, not one per event
        # Lanes whose retained state is behind their last change, and when each last had one.
        self._stale: set[str] = set()
        self._state_at: dict[str, float] = {}
        # device -> time.monotonic() its status last arrived (taken on paho's thread,
        # so a busy worker does not make a device look silent); devices not heard
        # since the edge started count from then.
        self._heard: dict[str, float] = {}
        self._started = time.monotonic()

    def start(self, db) -> None:
        """Open the ticket book on the lane worker's database and subscribe."""
        self._book = TicketBook(db, self.settings, self.coupons, receipt_mail=self.receipt_mail,
                               printer_for=lambda lane: printer_for(db.conn, self.routes, lane))
        self._printers = PrinterBook(db.conn)
        store = self.settings.store
        self.local.subscribe(topics.lane_filter(store, topics.LEAF_SCAN), lambda m: self._queue_event(m, Scan))
        self.local.subscribe(topics.lane_filter(store, topics.LEAF_CARD), lambda m: self._queue_event(m, CardRead))
        self.local.subscribe(topics.lane_filter(store, topics.LEAF_TICKET_CMD), lambda m: self._queue_event(m, TicketCommand))
        self.local.subscribe(topics.printer_results_filter(store), lambda m: self.worker.submit(self._on_print_result, m))
        self.local.subscribe(topics.device_status_filter(store),
                             lambda m: self.worker.submit(self._on_device_status, m, time.monotonic()))
        self.worker.every(1.0, self._age_device_statuses)
        self.worker.every(STATE_EVERY / 4, self._publish_states)
        self.worker.every(2.0, self._refresh_settings)
        # Also picks up receipts the store page queued (reprints, test prints) within a second.
        self.worker.every(1.0, self.resend_receipts)
        self.worker.every(3600, self.book.forget_old_events)

    @property
    def book(self) -> TicketBook:
        if self._book is None:
            raise RuntimeError("the ticket book is opened by start(), on the lane worker")
        return self._book

    @property
    def printers(self) -> PrinterBook:
        if self._printers is None:
            raise RuntimeError("the printer book is opened by start(), on the lane worker")
        return self._printers

    def republish(self) -> None:
        """Every lane's state again (on connect): the broker may have lost its retained copy."""
        for lane in self.book.lanes():
            self._publish_state(lane)

    def _publish_state(self, lane: str) -> None:
        self.local.publish(topics.ticket_state(self.settings.store, lane), self.book.state(lane).to_json(), retain=True)
        self._stale.discard(lane)
        self._state_at[lane] = time.monotonic()

    def _publish_states(self) -> None:
        """The retained state of each lane that changed, once its last one is STATE_EVERY old:
        O(lines) each, so never per event (a 1,000-line state is ~200 KB)."""
        now = time.monotonic()
        for lane in sorted(self._stale):
            if now - self._state_at.get(lane, 0.0) >= STATE_EVERY:
                try:
                    self._publish_state(lane)
                except Exception:  # committed: it goes out on the next round or reconnect
                    log.exception("publishing lane %s's ticket state failed", lane)

    def _queue_event(self, msg: Incoming, kind) -> None:
        try:
            lane = topics.parse(msg.topic).lane or ""
        except topics.TopicError:
            lane = ""  # reported by the worker, which reads the topic again
        self.events.put(lane, (msg, kind))
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        with self._drain_lock:
            if self._drain_queued:
                return
            self._drain_queued = True
        self.worker.submit(self._drain)

    def _drain(self) -> None:
        """One batch of the lanes' next events, then another drain after whatever else
        the worker has queued meanwhile (print results, requests, timers)."""
        with self._drain_lock:
            self._drain_queued = False
        try:
            self._batch()
        finally:
            if self.events:
                self._schedule_drain()

    def _next_event(self) -> tuple[Incoming, str, object] | None:
        """The next lane's next event, read; a malformed one is reported and skipped."""
        while (item := self.events.take()) is not None:
            msg, kind = item
            try:
                lane = topics.parse(msg.topic).lane
                assert lane is not None  # subscribed with a lane filter: every topic names a lane
                return msg, lane, kind.parse(msg.payload)
            except (PayloadError, topics.TopicError) as exc:
                self.report(msg, str(exc))
            except Exception as exc:  # a bug in parsing one event: reported, the others go on
                log.exception("lane event on %s could not be read", msg.topic)
                self.report(msg, f"internal error: {exc}")
        return None

    def _batch(self) -> None:
        """The lanes' next events in turns, carried out in one transaction until MAX_BATCH
        or BATCH_BUDGET; their changes go out once it has committed. A coupon asks HQ,
        so it goes alone, after the batch and outside any."""
        taken: list[tuple[Incoming, str, object]] = []
        done: list[tuple[Incoming, EventOutcome]] = []
        alone = None
        started = time.monotonic()
        try:
            with self.book.batch():
                while len(taken) < MAX_BATCH and (not taken or time.monotonic() - started < BATCH_BUDGET):
                    item = self._next_event()
                    if item is None:
                        break
                    if isinstance(item[2], TicketCommand) and item[2].op == "apply_coupon":
                        alone = item
                        break
                    taken.append(item)
                    self._carry_out(item, done)
        except Exception as exc:
            # The batch's own transaction failed (BEGIN or COMMIT): none of it was kept.
            # Each event again on its own, so that one cannot sink the others.
            self.book.forget_kept()
            done = []
            if len(taken) > 1:
                log.exception("lane batch of %d events failed; carrying them out one by one", len(taken))
                for item in taken:
                    self._run_alone(item, in_transaction=True)
            elif taken:
                log.exception("lane event on %s failed", taken[0][0].topic)
                self.report(taken[0][0], f"internal error: {exc}")
        self._publish_done(done)
        if alone is not None:
            self._run_alone(alone, in_transaction=False)

    def _run_alone(self, item: tuple[Incoming, str, object], in_transaction: bool) -> None:
        done: list[tuple[Incoming, EventOutcome]] = []
        try:
            with self.book.batch() if in_transaction else contextlib.nullcontext():
                self._carry_out(item, done)
        except Exception as exc:
            self.book.forget_kept()
            log.exception("lane event on %s failed", item[0].topic)
            self.report(item[0], f"internal error: {exc}")
            return
        self._publish_done(done)

    def _carry_out(self, item: tuple[Incoming, str, object], done: list) -> None:
        msg, lane, event = item
        try:
            if isinstance(event, Scan):
                done.append((msg, self.book.scan(lane, event)))
            elif isinstance(event, CardRead):
                done.append((msg, self.book.card(lane, event)))
            else:
                assert isinstance(event, TicketCommand)  # the three kinds subscribed to
                done.append((msg, self.book.command(lane, event)))
        except Exception as exc:  # a bug with one event must not lose the others
            log.exception("lane event on %s failed", msg.topic)
            self.report(msg, f"internal error: {exc}")

    def _publish_done(self, done: list[tuple[Incoming, EventOutcome]]) -> None:
        for msg, outcome in done:
            try:
                self._publish(outcome)
            except Exception as exc:  # committed: the lane's state goes out on the next round or reconnect
                log.exception("publishing the outcome of %s failed", msg.topic)
                self.report(msg, f"internal error: {exc}")

    def _publish(self, outcome: EventOutcome) -> None:
        if outcome.duplicate or outcome.change is None:  # a redelivery; its change went out the first time
            return
        store = self.settings.store
        self.local.publish(topics.ticket_change(store, outcome.lane), outcome.change.to_json())
        if outcome.change.line_count <= STATE_EVERY_CHANGE_LINES:
            self._publish_state(outcome.lane)
        else:
            self._stale.add(outcome.lane)
        for device, job, receipt in outcome.jobs:
            if device:
                self._send_receipt(outcome.lane, device, job, receipt.to_dict())
            else:
                self._tell_no_printer(outcome.lane)

    def _send_receipt(self, lane: str, device: str, job: str, receipt: dict) -> None:
        """``receipt``: a ``Receipt``'s JSON object (``to_dict()``, or as ``print_jobs`` keeps it)."""
        try:
            topic = topics.printer_job(self.settings.store, lane, device)
        except topics.TopicError as exc:
            log.error("receipt %s not sent: %s", job, exc)
            return
        if device not in self._told_unknown_printer and not is_known_printer(self.book.conn, device):
            self._told_unknown_printer.add(device)
            self._tell(lane, f"lane {lane}: receipts go to printer {device}, which has never reported "
                             f"(is its bridge running? see [lane.{lane}] / [store] printer in edge.toml)")
        self.local.publish(topic, PrintJob(job=job, receipt=receipt).to_json())
        self.printers.job_sent(job)

    def resend_receipts(self) -> None:
        """Receipts a printer has not reported printed are sent again (the bridge
        prints a job id once, however often it arrives); a receipt that has no
        printer yet is routed now if its lane has one, else it waits."""
        if not self.local.connected.is_set():
            return
        for lane, device, job in self.printers.due_jobs(self.print_retry):
            if not device:
                device = self.printers.route_job(job, self.book.printer_for(lane))
                if not device:
                    self._tell_no_printer(lane)
                    continue
                self._told_no_printer.discard(lane)
            receipt = self.printers.job_receipt(job)  # read only for the jobs sent now
            if receipt is not None:
                self._send_receipt(lane, device, job, receipt)

    def _tell_no_printer(self, lane: str) -> None:
        if lane in self._told_no_printer:
            return
        self._told_no_printer.add(lane)
        self._tell(lane, f"lane {lane} has no receipt printer: its receipts are kept until a printer bridge "
                         f"for lane {lane} comes online or edge.toml names one ([lane.{lane}] printer)")

    def _tell(self, lane: str, reason: str) -> None:
        publish_report(self.local, self.settings.store, topics.ticket_state(self.settings.store, lane), reason, logger=log)

    def _on_device_status(self, msg: Incoming, heard_at: float) -> None:
        if not msg.payload:  # a cleared retained status
            return
        try:
            device = topics.parse(msg.topic).device
            assert device is not None  # subscribed with the device status filter
            status = DeviceStatus.parse(msg.payload)
        except (PayloadError, topics.TopicError) as exc:
            self.report(msg, str(exc))
            return
        self._heard[device] = max(heard_at, self._heard.get(device, heard_at))
        changed = self.printers.record_device(device, status.kind, status.lane, status.state, status.detail)
        if changed and status.kind == "printer" and status.state == "online":
            self._told_unknown_printer.discard(device)
            self.resend_receipts()  # receipts waiting for a printer on this lane go now

    def _age_device_statuses(self) -> None:
        """An online device whose bridge has gone quiet (frozen, cut off) is offline now,
        not when the broker gets round to its last will."""
        now = time.monotonic()
        for device in self.printers.online_devices():
            if now - self._heard.get(device, self._started) > DEVICE_SILENT_AFTER:
                log.warning("device %s: no status for %.0f s; counted offline until it is heard again",
                            device, DEVICE_SILENT_AFTER)
                self.printers.mark_device_silent(device)

    def _refresh_settings(self) -> None:
        """Settings changed on the store page apply to the next event."""
        self.book.settings = apply_settings(self.settings, stored_settings(self.book.conn))

    def _on_print_result(self, msg: Incoming) -> None:
        try:
            result = PrintResult.parse(msg.payload)
        except PayloadError as exc:
            self.report(msg, str(exc))
            return
        if self.printers.job_result(result.job, result.ok, result.status, result.error or ""):
            log.info("receipt %s %s (%s)", result.job, "printed" if result.ok else "not printed", result.error or result.status)
