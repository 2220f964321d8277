"""The edge service: a store's replica, its link to HQ and its lanes.

Two brokers: the store broker (lanes and devices) and the HQ broker (sync).
Two workers, each with its own SQLite connection: *sync* (snapshot,
catch-up, downstream, outbox, code leases, status) and *lane* (lane
requests), so a long catch-up never keeps a cashier waiting on a search.
The broker is never trusted to keep anything (DESIGN section 11): the
outbox is resent until HQ acks, and gaps in ``seq`` are filled from HQ's log.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from lanehub.protocol import topics
from lanehub.protocol.change import Change
from lanehub.runtime.config import Config
from lanehub.replication.schema import transaction
from lanehub.protocol.lane import CustomerReply, CustomerRequest, EdgeStatus, ErrorReport
from lanehub.protocol.sync import DownBatch, StoreMessage, SyncReply, SyncRequest, SyncStatus, UpBatch
from lanehub.protocol.envelope import PayloadError
from lanehub.domain.model import ENTITIES, ValidationError
from lanehub.runtime.mqtt import DEFAULT_SESSION_EXPIRY, Incoming, LinkState, MqttClient, RequestTimeout
from lanehub.runtime.worker import Worker

from edge.db import EdgeDatabase, NotReady, PastDeadline
from edge.lane.bus import TicketLanes
from edge.lane.mail import MailSender, MailSettings, ReceiptMail, error_topic_alert
from edge.lane.printers import PrinterRoutes
from edge.lane.register import past_deadline, payment_card_refusal, register_op
from lanehub.domain.search import lane_view, search_customers
from lanehub.runtime.report import publish_report
from edge.lane.tickets import LaneSettings, Refused

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between sync housekeeping rounds
STATUS_EVERY = 5.0
UP_BATCH = 200
SNAPSHOT_PAGE = 5000
CATCHUP_PAGE = 2000
REQUEST_TIMEOUT = 5.0
COUPON_TIMEOUT = 2.0  # likewise for a coupon at the till
HISTORY_TIMEOUT = 2.0  # a cashier is waiting: fall back to local sales quickly
# What a lane hears of a bug: the details (which may quote the request) go to the error topic only.
INTERNAL_ERROR_REPLY = "internal error: the edge could not handle this request (see the store's error topic)"
LEASE_WAIT = 0.05  # a lane create out of numbers waits this long for HQ's block, then goes provisional
LEASE_RETRY_AFTER_REFUSAL = 30.0  # HQ refused a block (the cap): the edge asks again after this


REJECTIONS_LISTED = 10  # in the one error report about a batch's rejections; `lanehub edge rejections` has them all


def rejections_reason(rejected: list[dict]) -> str:
    """One line for the changes HQ refused from one up batch."""
    if len(rejected) == 1:
        return f"HQ rejected change {rejected[0].get('id')}: {rejected[0].get('reason')}"
    listed = "; ".join(f"{r.get('id')}: {r.get('reason')}" for r in rejected[:REJECTIONS_LISTED])
    more = len(rejected) - REJECTIONS_LISTED
    return f"HQ rejected {len(rejected)} changes: {listed}" + (
        f"; and {more} more (lanehub edge rejections lists them)" if more > 0 else "")


class HQUnavailable(Exception):
    pass


class HQRefused(HQUnavailable):
    """HQ answered, and said no (the reason is the message)."""


class HQCouponGate:
    """Coupons are reserved at HQ so that one ticket in the chain redeems each;
    when HQ cannot be asked, the store's ``coupon_offline`` policy decides."""

    def __init__(self, service: "EdgeService", offline_policy):
        self.service = service
        self.offline_policy = offline_policy  # called: the store page may change it

    def reserve(self, code: str, ticket: str, customer_id: str) -> str:
        try:
            self.service._request(SyncRequest(op="coupon_reserve", coupon=code, ticket=ticket, customer_id=customer_id),
                                  timeout=COUPON_TIMEOUT)
        except HQRefused as exc:
            raise Refused("coupon_refused", str(exc)) from None
        except (HQUnavailable, PayloadError) as exc:
            if self.offline_policy() == "allow":
                log.warning("edge %s: coupon %s accepted offline (%s)", self.service.store, code, exc)
                return "offline"
            raise Refused("coupon_offline", "HQ cannot be reached to redeem the coupon, and this store "
                                            "does not accept coupons offline") from None
        return "online"

    def release(self, code: str, ticket: str) -> None:
        def release() -> None:
            try:
                self.service._request(SyncRequest(op="coupon_release", coupon=code, ticket=ticket), timeout=COUPON_TIMEOUT)
            except (HQUnavailable, PayloadError) as exc:  # the reservation lapses at HQ anyway
                log.info("edge %s: coupon %s not released at HQ: %s", self.service.store, code, exc)
        self.service.sync.submit(release)


class EdgeService:
    def __init__(self, config: Config):
        self.config = config
        self.store = config["store"]["id"]
        self.db_path = config["store"]["db"]
        self.low_water = config["store"]["code_low_water"]
        self.retry_after = config["store"]["outbox_retry"]
        self.sync_db: EdgeDatabase | None = None
        self.lane_db: EdgeDatabase | None = None
        self.sync = Worker("edge-sync", setup=self._open_sync_db, teardown=lambda: self.sync_db and self.sync_db.close())
        self.lane = Worker("edge-lane", setup=self._open_lane_db, teardown=lambda: self.lane_db and self.lane_db.close())
        self._last_status = 0.0
        self._catching_up = False
        self._leasing: Future | None = None  # a lane create's background code_block request
        self._lease_lock = threading.Lock()
        self._lease_refused_until = 0.0
        client_id = f"lanehub-edge-{self.store}"
        # A persistent session on the store broker too: scans and ticket commands
        # sent while the edge restarts wait for it in the broker (QoS 1).
        self.local = MqttClient(
            config.broker("broker"), client_id, clean_start=False, session_expiry=DEFAULT_SESSION_EXPIRY,
            will=(topics.edge_status(self.store), EdgeStatus(state="offline").to_json()),
            on_connect=self._local_connected,
            on_handler_error=lambda msg, exc: self.report(msg, f"internal error: {exc}"),
            name="store broker",
        )
        store_cfg = config["store"]
        self.tickets = TicketLanes(self.local, self.lane, LaneSettings(
            store=self.store, currency=store_cfg["currency"], block_defaulters=store_cfg["block_defaulters"],
            receipt_shows_customer=store_cfg["receipt_shows_customer"], printer=store_cfg["printer"],
            name=store_cfg["name"], address=store_cfg["address"], tax_id=store_cfg["tax_id"],
            footer=store_cfg["receipt_footer"], coupon_offline=store_cfg["coupon_offline"],
            variable_measure=tuple(store_cfg["variable_measure"])), self.report,
            store_cfg["print_retry"], HQCouponGate(self, lambda: self.tickets.book.settings.coupon_offline))
        self.tickets.routes = PrinterRoutes.from_config(config)
        self.hq = MqttClient(
            config.broker("hq"), client_id, clean_start=False, session_expiry=DEFAULT_SESSION_EXPIRY,
            will=(topics.sync_status(self.store), SyncStatus(state="offline").to_json()),
            on_connect=lambda: self.sync.submit(self._hq_connected),
            on_disconnect=lambda: self.sync.submit(self.publish_status),
            on_handler_error=lambda msg, exc: self.report(msg, f"internal error: {exc}"),
            name="HQ broker",
        )
        # E-mailed receipts (edge.lane.mail): queued by the close on the lane worker, sent
        # by a thread of its own (no sender while [mail] has no host).
        self.mail_settings = MailSettings.from_config(config)
        self.receipt_mail = ReceiptMail(self.mail_settings, self.store, error_topic_alert(self.local, self.store))
        self.mail_sender = (MailSender(self.db_path, self.mail_settings, error_topic_alert(self.local, self.store), self.store)
                            if self.mail_settings.configured else None)

    # --- lifecycle -----------------------------------------------------------------------

    def _open_sync_db(self) -> None:
        self.sync_db = EdgeDatabase(self.db_path, self.store)

    def _open_lane_db(self) -> None:
        self.lane_db = EdgeDatabase(self.db_path, self.store)

    def start(self) -> "EdgeService":
        self.sync.start()
        self.sync.call(lambda: None)  # the database opens (and migrates) before anything else
        self.lane.start()
        self.lane.call(lambda: self.tickets.start(self.lane_db))
        self.lane.call(lambda: self.receipt_mail.attach(self.tickets.book))
        self.local.subscribe(topics.lane_filter(self.store, "customer/req"), lambda m: self.lane.submit(self._on_customer_request, m))
        self.hq.subscribe(topics.sync_down(), lambda m: self.sync.submit(self._on_down, m))
        self.hq.subscribe(topics.sync_store(self.store), lambda m: self.sync.submit(self._on_store_message, m))
        # Replies to our requests are taken by correlation before dispatch; anything
        # else under our reply prefix (a reply that came after its timeout) is dropped.
        # One level ("+", not "#"): "#" matches sync/store/{store} too, and Mosquitto
        # then delivers every ack twice, once per matching subscription.
        self.hq.subscribe(f"{topics.sync_store(self.store)}/+", lambda m: self.sync.submit(self._on_late_reply, m))
        self.local.start()
        self.hq.start()
        self.sync.every(TICK, self._tick)
        if self.mail_sender:
            self.mail_sender.start()
        log.info("edge %s running: db %s", self.store, self.db_path)
        return self

    def stop(self) -> None:
        if self.mail_sender:
            self.mail_sender.stop()
        try:  # the sync worker's connection belongs to its thread
            pending, last = self.sync.call(lambda: (self.sync_db.pending_up(), self.sync_db.last_seq), timeout=5)
        except Exception:  # a worker that is stuck or gone: the will says offline without figures
            pending, last = 0, 0
        self.hq.stop(last=(topics.sync_status(self.store), SyncStatus(state="offline", pending_up=pending, last_seq=last, ts=time.time()).to_json()))
        self.local.stop(last=(topics.edge_status(self.store), EdgeStatus(state="offline", hq_link="down", pending_up=pending, last_seq=last).to_json()))
        self.sync.stop()
        self.lane.stop()

    def broker_links(self) -> dict[str, LinkState]:
        """The two links as they are now, for the store page's /healthz."""
        return {"store_broker": self.local.link, "hq_broker": self.hq.link}

    def _local_connected(self) -> None:
        self.sync.submit(self.publish_status)
        self.lane.submit(self.tickets.republish)

    # --- errors ---------------------------------------------------------------------------

    def report(self, msg: Incoming, reason: str) -> None:
        publish_report(self.local, self.store, msg.topic, reason, msg.payload, log)

    # --- HQ link (sync worker) -------------------------------------------------------------------

    def _request(self, request: SyncRequest, timeout: float = REQUEST_TIMEOUT) -> dict:
        if not self.hq.connected.is_set():
            raise HQUnavailable("no link to HQ")
        try:
            reply = self.hq.request(topics.sync_req(self.store), request.to_json(), topics.sync_reply(self.store), timeout)
        except RequestTimeout as exc:
            raise HQUnavailable(str(exc)) from None
        answer = SyncReply.parse(reply.payload)
        if not answer.ok:
            raise HQRefused(answer.error or f"HQ refused {request.op}")
        return answer.data

    def _hq_connected(self) -> None:
        try:
            hello = self._request(SyncRequest(op="hello"))
            codes = hello["codes"]
            db = self.sync_db
            if db.codes is None or db.codes.to_dict() != codes:
                db.set_codes(codes["prefix"], codes["width"])
            if not db.ready:
                self._take_snapshot()
            else:
                self._catch_up()
            self._flush_outbox(retry_after=0)
            self._ensure_codes()
        except (HQUnavailable, PayloadError, KeyError) as exc:
            log.warning("edge %s: sync with HQ interrupted: %s", self.store, exc)
        self.publish_status()

    def _tick(self) -> None:
        db = self.sync_db
        if self.hq.connected.is_set():
            try:
                if not db.ready or db.codes is None:
                    self._hq_connected()
                    return
                self._flush_outbox(self.retry_after)
                self._ensure_codes()
            except HQUnavailable as exc:
                log.warning("edge %s: %s", self.store, exc)
        if time.monotonic() - self._last_status >= STATUS_EVERY:
            self.publish_status()

    def _take_snapshot(self) -> None:
        """Every entity page by page from empty tables. The next page is asked for
        while this one is written, so HQ's read and the edge's write overlap."""
        db = self.sync_db
        started = time.monotonic()
        db.begin_snapshot()
        head = None
        total = 0
        with ThreadPoolExecutor(1, thread_name_prefix="snapshot-fetch") as fetcher:
            for entity in ENTITIES:
                page = fetcher.submit(self._request, SyncRequest(op="snapshot", entity=entity, limit=SNAPSHOT_PAGE))
                while page is not None:
                    data = page.result()
                    page = None
                    if data["next"]:
                        page = fetcher.submit(self._request, SyncRequest(op="snapshot", entity=entity, after=data["next"],
                                                                         limit=SNAPSHOT_PAGE))
                    if head is None:
                        head = data["head"]
                    db.load_snapshot_page(entity, data["columns"], data["rows"])
                    total += len(data["rows"])
        db.finish_snapshot(head or 0)
        log.info("edge %s: snapshot of %d records at seq %d in %.1fs", self.store, total, head or 0, time.monotonic() - started)
        self._catch_up()

    def _catch_up(self) -> None:
        if self._catching_up:
            return
        self._catching_up = True
        try:
            db = self.sync_db
            while True:
                data = self._request(SyncRequest(op="catchup", from_seq=db.last_seq + 1, limit=CATCHUP_PAGE))
                changes = [Change.from_dict(c) for c in data["changes"]]
                if changes:
                    db.apply_down(changes)
                if not data["more"] or not changes:
                    break
        finally:
            self._catching_up = False
        self.publish_status()

    def _flush_outbox(self, retry_after: float) -> None:
        db = self.sync_db
        if not self.hq.connected.is_set():
            return
        for _ in range(50):  # at most 10k changes a round; the next tick sends more
            due = db.outbox_due(retry_after, UP_BATCH)
            if not due:
                break
            self.hq.publish(topics.sync_up(self.store), UpBatch(store=self.store, changes=due).to_json())
            db.mark_sent([c["id"] for c in due])
            if len(due) < UP_BATCH:
                break

    def _ensure_codes(self) -> None:
        db = self.sync_db
        if db.codes is None or db.codes_left() >= max(self.low_water, 1):
            return
        if time.monotonic() < self._lease_refused_until:
            return  # HQ said no (this store's blocks are at its cap): ask again later
        lease = db.pending_lease()
        try:
            data = self._request(SyncRequest(op="code_block", lease=lease))
        except HQRefused:
            self._lease_refused_until = time.monotonic() + LEASE_RETRY_AFTER_REFUSAL
            raise
        db.add_block(lease, data["start"], data["end"])
        log.info("edge %s: leased codes %d-%d", self.store, data["start"], data["end"])

    def _lease_in_background(self) -> Future:
        """One code_block request at a time on the sync worker, for lane creates."""
        with self._lease_lock:
            if self._leasing is None or self._leasing.done():
                self._leasing = self.sync.submit(self._ensure_codes_or_warn)
            return self._leasing

    def _ensure_codes_or_warn(self) -> None:
        try:
            self._ensure_codes()
        except (HQUnavailable, PayloadError, KeyError) as exc:  # handled: one line, the lane goes provisional
            log.warning("edge %s: no code block from HQ: %s", self.store, exc)

    def publish_status(self) -> None:
        db = self.sync_db
        pending, last = db.pending_up(), db.last_seq
        link = "up" if self.hq.connected.is_set() else "down"
        if db.meta.get("hq_link") != link:  # for the store page, which runs beside this service
            with transaction(db.conn):
                db.meta.set("hq_link", link)
        self.local.publish(topics.edge_status(self.store),
                           EdgeStatus(state="online", hq_link=link, pending_up=pending, last_seq=last).to_json(), retain=True)
        if self.hq.connected.is_set():
            self.hq.publish(topics.sync_status(self.store),
                            SyncStatus(state="online", pending_up=pending, last_seq=last, ts=time.time()).to_json(), retain=True)
        self._last_status = time.monotonic()

    # --- from HQ -------------------------------------------------------------------------------

    def _on_down(self, msg: Incoming) -> None:
        db = self.sync_db
        try:
            batch = DownBatch.parse(msg.payload)
            changes = [Change.from_dict(c) for c in batch.changes]
            if any(c.seq is None for c in changes):
                raise PayloadError("downstream change without seq")
        except PayloadError as exc:
            self.report(msg, str(exc))
            return
        except Exception as exc:  # a bug in reading one batch: reported; the next one is handled
            log.exception("edge %s: downstream batch could not be read", self.store)
            self.report(msg, f"internal error: {exc}")
            return
        if not db.ready:
            return  # the snapshot and its catch-up cover these
        try:
            if batch.type == "head":
                if batch.head > db.last_seq:
                    self._catch_up()
            elif not db.apply_down(changes):
                self._catch_up()
        except (HQUnavailable, PayloadError) as exc:
            log.warning("edge %s: catch-up interrupted: %s", self.store, exc)
        except Exception as exc:
            # Nothing of the batch was applied (one transaction) and last_seq did not
            # move: the next head starts a catch-up that tries again.
            log.exception("edge %s: downstream batch failed", self.store)
            self.report(msg, f"internal error: {exc}")

    def _on_store_message(self, msg: Incoming) -> None:
        db = self.sync_db
        try:
            message = StoreMessage.parse(msg.payload)
        except PayloadError as exc:
            self.report(msg, str(exc))
            return
        except Exception as exc:  # a bug in reading one message: reported; the next one is handled
            log.exception("edge %s: message from HQ could not be read", self.store)
            self.report(msg, f"internal error: {exc}")
            return
        try:
            if message.type == "error":
                self.local.publish(topics.error(self.store), ErrorReport(
                    topic=str(message.error.get("topic", msg.topic)), reason=f"HQ: {message.error.get('reason', '')}",
                    payload_excerpt=str(message.error.get("payload_excerpt", ""))).to_json())
                return
            db.acked([i for i in message.acked if isinstance(i, str)])
            rejected, failed = [], []
            for rejection in message.rejected:
                if not isinstance(rejection, dict):
                    continue
                try:
                    db.rejected(rejection)
                except Exception as exc:  # one rejection that cannot be recorded does not hold up the others
                    log.exception("edge %s: HQ's rejection of %s not recorded", self.store, rejection.get("id"))
                    failed.append(f"{rejection.get('id')}: {exc}")
                log.warning("edge %s: HQ rejected change %s: %s", self.store, rejection.get("id"), rejection.get("reason"))
                rejected.append(rejection)
            if rejected:  # one report per batch, however many it refused
                self.local.publish(topics.error(self.store), ErrorReport(
                    topic=topics.sync_up(self.store), reason=rejections_reason(rejected), payload_excerpt="").to_json())
            if failed:
                self.report(msg, f"internal error: rejections not recorded: {'; '.join(failed)}")
            self.publish_status()
        except Exception as exc:
            log.exception("edge %s: message from HQ failed", self.store)
            self.report(msg, f"internal error: {exc}")

    def _on_late_reply(self, msg: Incoming) -> None:
        """A reply under our reply prefix that no request waits for (it came after its
        timeout): dropped, unless it is not a reply at all."""
        try:
            SyncReply.parse(msg.payload)
        except PayloadError as exc:
            self.report(msg, str(exc))
            return
        log.info("edge %s: late reply on %s dropped", self.store, msg.topic)

    # --- lanes (lane worker) ----------------------------------------------------------------------

    def _on_customer_request(self, msg: Incoming) -> None:
        try:
            lane = topics.parse(msg.topic).lane
            request = CustomerRequest.parse(msg.payload)
        except (PayloadError, topics.TopicError) as exc:
            self.report(msg, str(exc))
            self.local.reply(msg, CustomerReply(ok=False, error=str(exc)).to_json())
            return
        except Exception as exc:  # a bug in reading one request: reported and answered, the next one is handled
            log.exception("customer request on %s could not be read", msg.topic)
            self.report(msg, f"internal error: {exc}")
            self.local.reply(msg, CustomerReply(ok=False, error=INTERNAL_ERROR_REPLY).to_json())
            return
        if not msg.response_topic:
            self.report(msg, "customer request without an MQTT 5 response topic")
            return
        try:
            db = self.lane_db
            refused = payment_card_refusal(request)  # never searched, stored or echoed (edge.lane.register)
            if refused is not None:
                reply = refused
            elif request.op == "search":
                reply = CustomerReply(ok=True, customers=search_customers(db.conn, request.q, request.limit))
            elif request.op == "create":
                reply = self._create_customer(db, request, lane)
            else:
                reply = register_op(db, request, lane, self._hq_history)
                if reply.ok and request.op != "history":
                    self.sync.submit(self._flush_outbox, self.retry_after)
        except Exception as exc:  # a bug in handling one request: reported and answered, the next one is handled
            log.exception("customer request on %s failed", msg.topic)
            self.report(msg, f"internal error: {exc}")
            reply = CustomerReply(ok=False, error=INTERNAL_ERROR_REPLY)
        self.local.reply(msg, reply.to_json())

    def hq_changes(self, customer_id: str) -> list | None:
        """A customer's change history from HQ's log, or None when HQ cannot answer now."""
        try:
            data = self._request(SyncRequest(op="changes", customer_id=customer_id, limit=100), timeout=HISTORY_TIMEOUT)
        except (HQUnavailable, PayloadError) as exc:
            log.info("edge %s: no change history from HQ: %s", self.store, exc)
            return None
        return data.get("changes")

    def _hq_history(self, customer_id: str, limit: int) -> list | None:
        """The customer's purchase history from HQ, or None when HQ cannot answer now."""
        try:
            data = self._request(SyncRequest(op="history", customer_id=customer_id, limit=limit), timeout=HISTORY_TIMEOUT)
        except (HQUnavailable, PayloadError) as exc:
            log.info("edge %s: purchase history from local sales: %s", self.store, exc)
            return None
        return data.get("history")

    def _create_customer(self, db: EdgeDatabase, request: CustomerRequest, lane: str) -> CustomerReply:
        refused = past_deadline(db, request)
        if refused:
            return refused
        if db.codes_left() == 0 and self.hq.connected.is_set():
            # Out of numbers but online: lease a block rather than go provisional, but
            # only if HQ answers at once. A frozen or busy HQ (the link still up) must
            # not keep the cashier waiting: the block is asked for in the background.
            try:
                self._lease_in_background().result(LEASE_WAIT)
            except FutureTimeout:
                log.info("edge %s: no code block within %.0f ms: provisional code", self.store, LEASE_WAIT * 1000)
            except Exception:  # the sync worker logged it; the cashier still gets a (provisional) code
                pass
        try:
            with db.until(request.deadline):
                record = db.create_customer(request.customer, request.user or f"lane:{lane}", request.id)
        except ValidationError as exc:
            return CustomerReply(ok=False, error=f"invalid customer: {exc}", errors=exc.errors)
        except (NotReady, PastDeadline) as exc:
            return CustomerReply(ok=False, error=str(exc))
        self.sync.submit(self._flush_outbox, self.retry_after)
        if self.hq.connected.is_set() and db.codes_left() < max(self.low_water, 1):
            self._lease_in_background()  # a burst drains numbers faster than the 1 s tick asks
        return CustomerReply(ok=True, customer=lane_view(record))
