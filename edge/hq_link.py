"""A store's link to HQ, on the edge's *sync* worker: the first snapshot, catch-up
from HQ's log, the outbox sent up in batches until HQ acks, HQ's acks and
rejections, code leases and the other requests to HQ.

The broker is never trusted to keep anything (docs/benchmarks.md): the outbox
is resent until HQ acks, and gaps in ``seq`` are filled from HQ's log.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from edge.db import EdgeDatabase
from edge.hq_errors import HQRefused, HQUnavailable
from edge.lane.tickets import Refused
from edge.snapshot import take_snapshot
from lanehub.protocol import topics
from lanehub.protocol.change import Change
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.sync import (
    REPLY_TYPES,
    CatchupReply,
    ChangesReply,
    CodeBlockReply,
    DownBatch,
    HelloReply,
    HistoryReply,
    Rejection,
    ReplyData,
    StoreMessage,
    SyncReply,
    SyncRequest,
    UpBatch,
)
from lanehub.replication.sqlite import transaction
from lanehub.runtime.mqtt import Incoming, MqttClient, RequestTimeout
from lanehub.runtime.report import publish_report
from lanehub.runtime.worker import Worker

log = logging.getLogger(__name__)

UP_BATCH = 200
CATCHUP_PAGE = 5000  # HQ's most per page
# Down batches waiting for the sync worker at most; past it they are dropped and the
# worker catches up from HQ's log instead. A store back from a week away gets its
# broker session's queue (up to 100,000 batches) at network speed: without this
# bound the edge would hold all of it in memory while it catches up (D49).
DOWN_WAITING = 8
REQUEST_TIMEOUT = 5.0
COUPON_TIMEOUT = 2.0  # likewise for a coupon at the till
HISTORY_TIMEOUT = 2.0  # a cashier is waiting: fall back to local sales quickly
LEASE_RETRY_AFTER_REFUSAL = 30.0  # HQ refused a block (the cap): the edge asks again after this
SAMPLE_EVERY = 60.0  # seconds between two lag/outbox samples while the link stays as it was
SAMPLES_KEPT = 7 * 24 * 3600  # seconds a sample is kept (the sync page charts the last hour)
REJECTIONS_LISTED = 10  # in the one error report about a batch's rejections; `lanehub edge rejections` has them all

_Reply = TypeVar("_Reply", bound=ReplyData)


def rejections_reason(rejected: Sequence[Rejection]) -> str:
    """One line for the changes HQ refused from one up batch."""
    if len(rejected) == 1:
        return f"HQ rejected change {rejected[0].id}: {rejected[0].reason}"
    listed = "; ".join(f"{r.id}: {r.reason}" for r in rejected[:REJECTIONS_LISTED])
    more = len(rejected) - REJECTIONS_LISTED
    return f"HQ rejected {len(rejected)} changes: {listed}" + (
        f"; and {more} more (lanehub edge rejections lists them)" if more > 0 else "")


class HqLink:
    """Everything the edge says to HQ and hears from it. Runs on the sync worker
    (``sync``), whose database ``db()`` is; the wiring is EdgeService's."""

    def __init__(self, config, hq: MqttClient, local: MqttClient, sync: Worker, db: Callable[[], EdgeDatabase],
                 report: Callable[[Incoming, str], None], publish_status: Callable[[], None]):
        self.store = config["store"]["id"]
        self.low_water = config["store"]["code_low_water"]
        self.retry_after = config["store"]["outbox_retry"]
        self.hq = hq
        self.local = local  # the store broker: HQ's errors and rejections go to the store's error topic
        self.sync = sync
        self._db = db
        self.report = report
        self.publish_status = publish_status
        self._catching_up = False
        self._down_lock = threading.Lock()
        self._down_waiting = 0  # down batches queued on the sync worker
        self._down_dropped = False  # one was dropped: the next one handled catches up
        self._leasing: Future | None = None  # a lane create's background code_block request
        self._lease_lock = threading.Lock()
        self._lease_refused_until = 0.0
        self.hq_head: int | None = None  # HQ's last seq as last heard (hello, catch-up, down batches)
        self._sampled = (0.0, "")  # when the last sample was taken, and the link then

    @property
    def db(self) -> EdgeDatabase:
        return self._db()

    @property
    def connected(self) -> bool:
        return self.hq.connected.is_set()

    def subscribe(self) -> None:
        self.hq.subscribe(topics.sync_down(), self._queue_down)
        self.hq.subscribe(topics.sync_store(self.store), lambda m: self.sync.submit(self.on_store_message, m))
        # Replies to our requests are taken by correlation before dispatch; anything
        # else under our reply prefix (a reply that came after its timeout) is dropped.
        # One level ("+", not "#"): "#" matches sync/store/{store} too, and Mosquitto
        # then delivers every ack twice, once per matching subscription.
        self.hq.subscribe(topics.sync_replies_filter(self.store), lambda m: self.sync.submit(self.on_late_reply, m))

    # --- requests ------------------------------------------------------------------------

    def _request(self, request: SyncRequest, timeout: float = REQUEST_TIMEOUT) -> ReplyData:
        """HQ's answer, as the op's reply type (a reply without its fields is a PayloadError)."""
        if not self.connected:
            raise HQUnavailable("no link to HQ")
        try:
            reply = self.hq.request(topics.sync_req(self.store), request.to_json(), topics.sync_reply(self.store), timeout)
        except RequestTimeout as exc:
            raise HQUnavailable(str(exc)) from None
        answer = SyncReply.parse(reply.payload)
        if not answer.ok:
            raise HQRefused(answer.error or f"HQ refused {request.op}")
        return REPLY_TYPES[request.op].from_dict(answer.data)

    def _request_as(self, request: SyncRequest, reply_type: type[_Reply], timeout: float = REQUEST_TIMEOUT) -> _Reply:
        """_request's answer, typed as ``reply_type``: REPLY_TYPES[request.op], the class it is read as."""
        reply = self._request(request, timeout)
        assert isinstance(reply, reply_type), f"{request.op} is answered with {type(reply).__name__}"
        return reply

    def change_history(self, customer_id: str) -> list | None:
        """A customer's change history from HQ's log, or None when HQ cannot answer now."""
        try:
            reply = self._request_as(SyncRequest(op="changes", customer_id=customer_id, limit=100), ChangesReply,
                                     timeout=HISTORY_TIMEOUT)
        except (HQUnavailable, PayloadError) as exc:
            log.info("edge %s: no change history from HQ: %s", self.store, exc)
            return None
        return reply.changes

    def purchase_history(self, customer_id: str, limit: int) -> list | None:
        """The customer's purchase history from HQ, or None when HQ cannot answer now."""
        try:
            reply = self._request_as(SyncRequest(op="history", customer_id=customer_id, limit=limit), HistoryReply,
                                     timeout=HISTORY_TIMEOUT)
        except (HQUnavailable, PayloadError) as exc:
            log.info("edge %s: purchase history from local sales: %s", self.store, exc)
            return None
        return reply.history

    # --- sync (sync worker) -----------------------------------------------------------------

    def on_connected(self) -> None:
        try:
            hello = self._request_as(SyncRequest(op="hello"), HelloReply)
            self.hq_head = hello.head
            db = self.db
            if db.codes is None or db.codes.to_dict() != hello.codes.to_dict():
                db.set_codes(hello.codes.prefix, hello.codes.width)
            if not db.ready:
                self._take_snapshot()
            else:
                self.catch_up()
            self.flush_outbox(retry_after=0)
            self.ensure_codes()
        except (HQUnavailable, PayloadError, KeyError) as exc:
            log.warning("edge %s: sync with HQ interrupted: %s", self.store, exc)
        self.publish_status()

    def tick(self) -> None:
        """A housekeeping round: a lag/outbox sample when due, a snapshot not finished, the
        outbox due again, codes running low."""
        self.sample()
        if not self.connected:
            return
        db = self.db
        try:
            if not db.ready or db.codes is None:
                self.on_connected()
                return
            self.flush_outbox(self.retry_after)
            self.ensure_codes()
        except HQUnavailable as exc:
            log.warning("edge %s: %s", self.store, exc)

    def sample(self, now: float | None = None) -> bool:
        """Record the store's lag behind HQ and its outbox depth for the sync page's chart:
        at most once a SAMPLE_EVERY, and at once when the link goes up or down. The lag
        is not known (NULL) while the link is down. Returns whether it recorded one."""
        now = time.time() if now is None else now
        link = "up" if self.connected else "down"
        at, was = self._sampled
        if link == was and now - at < SAMPLE_EVERY:
            return False
        db = self.db
        lag = max(self.hq_head - db.last_seq, 0) if link == "up" and self.hq_head is not None else None
        with transaction(db.conn):
            db.conn.execute("INSERT OR REPLACE INTO sync_samples (at, hq_link, lag, pending_up) VALUES (?, ?, ?, ?)",
                            (now, link, lag, db.pending_up()))
            db.conn.execute("DELETE FROM sync_samples WHERE at < ?", (now - SAMPLES_KEPT,))
        self._sampled = (now, link)
        return True

    def _take_snapshot(self) -> None:
        take_snapshot(self.db, self._request_as, self.store)
        self.catch_up()

    def catch_up(self) -> None:
        """Apply HQ's log from last_seq + 1, page by page. The next page is asked for
        while this one is applied (one page in flight, one being applied: the edge's
        memory stays two pages whatever the lag); each page commits before the next."""
        if self._catching_up:
            return
        self._catching_up = True
        try:
            db = self.db
            with ThreadPoolExecutor(1, thread_name_prefix="catchup-fetch") as fetcher:
                page: Future[CatchupReply] | None = fetcher.submit(self._catchup_page, db.last_seq + 1)
                while page is not None:
                    reply = page.result()
                    page = None
                    self.hq_head = reply.head
                    before = db.last_seq
                    if reply.more and reply.through:
                        # The page covers up to ``through`` for this store: the next one starts after it.
                        page = fetcher.submit(self._catchup_page, reply.through + 1)
                    changes = [Change.from_dict(c) for c in reply.changes]
                    if changes or reply.through:
                        # The page covers from_seq..through for this store (lanehub.protocol.routes).
                        db.apply_down(changes, before + 1 if reply.through else 0, reply.through)
                    if not reply.more or db.last_seq == before:
                        break
                    if page is None:  # an HQ from before routes: the next page from what was applied
                        page = fetcher.submit(self._catchup_page, db.last_seq + 1)
                    elif db.last_seq != reply.through:  # not applied as far as the page covers: ask again from there
                        page.cancel()
                        page = fetcher.submit(self._catchup_page, db.last_seq + 1)
        finally:
            self._catching_up = False
        self.publish_status()

    def _catchup_page(self, from_seq: int) -> CatchupReply:
        return self._request_as(SyncRequest(op="catchup", from_seq=from_seq, limit=CATCHUP_PAGE, routed=True),
                                CatchupReply)

    def flush_outbox(self, retry_after: float) -> None:
        db = self.db
        if not self.connected:
            return
        for _ in range(50):  # at most 10k changes a round; the next tick sends more
            due = db.outbox_due(retry_after, UP_BATCH)
            if not due:
                break
            self.hq.publish(topics.sync_up(self.store), UpBatch(store=self.store, changes=due).to_json())
            db.mark_sent([c["id"] for c in due])
            if len(due) < UP_BATCH:
                break

    def flush_soon(self) -> None:
        """A lane wrote: the outbox goes up on the sync worker, not a tick later."""
        self.sync.submit(self.flush_outbox, self.retry_after)

    # --- code leases -------------------------------------------------------------------------

    def short_of_codes(self, db: EdgeDatabase) -> bool:
        return db.codes_left() < max(self.low_water, 1)

    def ensure_codes(self) -> None:
        db = self.db
        if db.codes is None or not self.short_of_codes(db):
            return
        if time.monotonic() < self._lease_refused_until:
            return  # HQ said no (this store's blocks are at its cap): ask again later
        lease = db.pending_lease()
        try:
            block = self._request_as(SyncRequest(op="code_block", lease=lease), CodeBlockReply)
        except HQRefused:
            self._lease_refused_until = time.monotonic() + LEASE_RETRY_AFTER_REFUSAL
            raise
        db.add_block(lease, block.start, block.end)
        log.info("edge %s: leased codes %d-%d", self.store, block.start, block.end)

    def lease_in_background(self) -> Future:
        """One code_block request at a time on the sync worker, for lane creates."""
        with self._lease_lock:
            if self._leasing is None or self._leasing.done():
                self._leasing = self.sync.submit(self._ensure_codes_or_warn)
            return self._leasing

    def _ensure_codes_or_warn(self) -> None:
        try:
            self.ensure_codes()
        except (HQUnavailable, PayloadError, KeyError) as exc:  # handled: one line, the lane goes provisional
            log.warning("edge %s: no code block from HQ: %s", self.store, exc)

    # --- from HQ (sync worker) ------------------------------------------------------------------

    def _queue_down(self, msg: Incoming) -> None:
        """On paho's thread: hand a down batch to the sync worker, or drop it when
        DOWN_WAITING are queued already (HQ's log has it: the worker catches up)."""
        with self._down_lock:
            if self._down_waiting >= DOWN_WAITING:
                self._down_dropped = True
                return
            self._down_waiting += 1
        self.sync.submit(self._take_down, msg)

    def _take_down(self, msg: Incoming) -> None:
        with self._down_lock:
            self._down_waiting -= 1
            dropped, self._down_dropped = self._down_dropped, False
        self.on_down(msg)
        if dropped and self.db.ready:
            try:
                self.catch_up()
            except (HQUnavailable, PayloadError) as exc:
                with self._down_lock:
                    self._down_dropped = True  # still owed: the next batch, or HQ's head, tries again
                log.warning("edge %s: catch-up interrupted: %s", self.store, exc)

    def on_down(self, msg: Incoming) -> None:
        db = self.db
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
        self.hq_head = batch.head
        if not db.ready:
            return  # the snapshot and its catch-up cover these
        try:
            if batch.type == "head":
                if batch.head > db.last_seq:
                    self.catch_up()
            elif not self._apply_batch(db, batch, changes):
                self.catch_up()
        except (HQUnavailable, PayloadError) as exc:
            log.warning("edge %s: catch-up interrupted: %s", self.store, exc)
        except Exception as exc:
            # Nothing of the batch was applied (one transaction) and last_seq did not
            # move: the next head starts a catch-up that tries again.
            log.exception("edge %s: downstream batch failed", self.store)
            self.report(msg, f"internal error: {exc}")

    def _apply_batch(self, db: EdgeDatabase, batch: DownBatch, changes: list[Change]) -> bool:
        """Apply a sync/down batch; False: catch up from HQ's log (a gap, or seqs held
        back for this store: HQ's catch-up answer for this store holds them)."""
        held = [seq for seq in batch.held.get(self.store, []) if seq > db.last_seq]
        if not held:
            return db.apply_down(changes, batch.first, batch.through)
        stop = min(held) - 1  # what comes before the first held seq applies now
        if stop >= batch.first:
            db.apply_down([c for c in changes if (c.seq or 0) <= stop], batch.first, stop)
        return False

    def on_store_message(self, msg: Incoming) -> None:
        db = self.db
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
            if message.type == "error":  # HQ could not use something the store sent: the store hears it too
                error = message.error
                publish_report(self.local, self.store, str(error.get("topic", msg.topic)), f"HQ: {error.get('reason', '')}",
                               str(error.get("payload_excerpt", "")), log)
                return
            db.acked([i for i in message.acked if isinstance(i, str)])
            failed = []
            for rejection in message.rejected:
                try:
                    db.rejected(rejection)
                except Exception as exc:  # one rejection that cannot be recorded does not hold up the others
                    log.exception("edge %s: HQ's rejection of %s not recorded", self.store, rejection.id)
                    failed.append(f"{rejection.id}: {exc}")
                log.warning("edge %s: HQ rejected change %s: %s", self.store, rejection.id, rejection.reason)
            if message.rejected:  # one report per batch, however many it refused
                publish_report(self.local, self.store, topics.sync_up(self.store), rejections_reason(message.rejected),
                               logger=log)
            if failed:
                self.report(msg, f"internal error: rejections not recorded: {'; '.join(failed)}")
            self.publish_status()
        except Exception as exc:
            log.exception("edge %s: message from HQ failed", self.store)
            self.report(msg, f"internal error: {exc}")

    def on_late_reply(self, msg: Incoming) -> None:
        """A reply under our reply prefix that no request waits for (it came after its
        timeout): dropped, unless it is not a reply at all."""
        try:
            SyncReply.parse(msg.payload)
        except PayloadError as exc:
            self.report(msg, str(exc))
            return
        log.info("edge %s: late reply on %s dropped", self.store, msg.topic)


class HQCouponGate:
    """Coupons are reserved at HQ so that one ticket in the chain redeems each;
    when HQ cannot be asked, the store's ``coupon_offline`` policy decides."""

    def __init__(self, link: HqLink, offline_policy):
        self.link = link
        self.offline_policy = offline_policy  # called: the store page may change it

    def reserve(self, code: str, ticket: str, customer_id: str) -> str:
        try:
            self.link._request(SyncRequest(op="coupon_reserve", coupon=code, ticket=ticket, customer_id=customer_id),
                               timeout=COUPON_TIMEOUT)
        except HQRefused as exc:
            raise Refused("coupon_refused", str(exc)) from None
        except (HQUnavailable, PayloadError) as exc:
            if self.offline_policy() == "allow":
                log.warning("edge %s: coupon %s accepted offline (%s)", self.link.store, code, exc)
                return "offline"
            raise Refused("coupon_offline", "HQ cannot be reached to redeem the coupon, and this store "
                                            "does not accept coupons offline") from None
        return "online"

    def release(self, code: str, ticket: str) -> None:
        def release() -> None:
            try:
                self.link._request(SyncRequest(op="coupon_release", coupon=code, ticket=ticket), timeout=COUPON_TIMEOUT)
            except (HQUnavailable, PayloadError) as exc:  # the reservation lapses at HQ anyway
                log.info("edge %s: coupon %s not released at HQ: %s", self.link.store, code, exc)
        self.link.sync.submit(release)
