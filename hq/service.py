"""The HQ service: applies store changes, sequences, publishes, answers requests.

Threads: paho's network thread only enqueues. The *apply* worker owns all
writes (store batches, code leases, store status) and the downstream
publisher, so ``seq`` is published in order. The *serve* worker answers
catch-up and snapshot requests, which only read, so a new store's snapshot
never delays other stores' changes.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import functools
import logging
import threading
import time

from hq.audit import change_history
from hq.broker_files import broker_files_now
from hq.config import code_format
from hq.coupons import HQCoupons
from hq.db import HQDatabase
from hq.fields import sync_field_rules
from hq.imports.engine import ImportSpec
from hq.imports.export import export_changes
from hq.imports.targets import TARGETS
from hq.publisher import PublisherLease
from hq.samples import prune_samples, sample_store
from hq.snapshot_file import Build, SnapshotFiles
from hq.storage import is_postgres
from hq.wake import WakeListener
from lanehub.domain.model import ENTITIES
from lanehub.domain.sales import purchase_history
from lanehub.protocol import topics
from lanehub.protocol.change import Change
from lanehub.protocol.envelope import SYNC_MAX_BYTES, PayloadError, decode_object
from lanehub.protocol.routes import ORIGIN_STORE, STORE_FIELD, route_of
from lanehub.protocol.sync import (
    CatchupReply,
    ChangesReply,
    CodeBlockReply,
    CodeSettings,
    CouponReleaseReply,
    CouponReserveReply,
    DownBatch,
    HelloReply,
    HistoryReply,
    ReplyData,
    SnapshotFileReply,
    SnapshotReply,
    StoreMessage,
    SyncReply,
    SyncRequest,
    SyncStatus,
    UpBatch,
)
from lanehub.replication.sqlite import transaction
from lanehub.runtime.config import Config
from lanehub.runtime.mqtt import Incoming, LinkState, MqttClient
from lanehub.runtime.report import publish_report
from lanehub.runtime.worker import Worker

log = logging.getLogger(__name__)

# What a store hears of a bug at HQ: the details go to HQ's error topic and the store's.
INTERNAL_ERROR_REPLY = "internal error: HQ could not answer this request (see lanehub/hq/error)"

DOWN_BATCH = 500  # changes per downstream message
HEAD_INTERVAL = 2.0  # seconds between retained head announcements
# Writes made by the CLI, pages and imports wake the service (hq/wake.py); the poll
# finds them when the wake-up cannot be sent ([hq] publish_poll, max(seq) is O(1)).
SNAPSHOT_PAGE_MAX = 20000
# Stores' lag and outbox samples (hq/samples.py, at most one a minute each):
# looked at this often, so a sample is at most this late; old ones pruned hourly.
SAMPLE_CHECK = 15.0
PRUNE_EVERY = 3600.0
# Up batches waiting on the apply worker are applied together, one transaction (one
# fsync) for all of them, and acked after its commit: with many stores pushing at
# once HQ otherwise spends its time committing (docs/benchmarks.md, "Chain").
GROUP_BATCHES = 64
GROUP_CHANGES = 5000
# HQ's broker session ends with its connection: the broker gives a shared
# subscription's messages to every member's session, offline ones too, so a dead HQ
# process's session would take its share of the stores' batches until it expired
# (measured: acks up to the expiry late; docs/benchmarks.md). What arrives while no HQ
# process is connected, the stores send again (their outboxes retry; requests time
# out and are asked again); the stores' statuses are retained.
HQ_SESSION_EXPIRY = 0


class HQService:
    def __init__(self, config: Config):
        self.config = config
        self.codes = code_format(config)
        self.block_size = config["codes"]["block_size"]
        self.max_outstanding_blocks = config["codes"]["max_outstanding_blocks"]
        self.db_path = config["hq"]["db"]
        self.db: HQDatabase | None = None  # owned by the apply worker
        self.reader: HQDatabase | None = None  # owned by the serve worker
        self.published = 0
        self.apply_worker = Worker("hq-apply", setup=self._open_writer, teardown=self._close_writer)
        self.serve_worker = Worker("hq-serve", setup=self._open_reader, teardown=self._close_reader)
        # Snapshot files (D49) are built and served on a worker of their own: a build of a
        # million customers takes seconds, and catch-up pages must not wait for it.
        self.snapshots = SnapshotFiles(self.db_path, config["hq"]["snapshot_chunk"])
        self.snapshot_db: HQDatabase | None = None
        self.snapshot_worker = Worker("hq-snapshot", setup=self._open_snapshot_db, teardown=self._close_snapshot_db)
        # Exports to an external system (a network share, a POS database) run on their own
        # worker and connection, so a slow target never holds up the stores' changes.
        self.exporter: HQDatabase | None = None
        self.export_worker = Worker("hq-export", setup=self._open_exporter, teardown=self._close_exporter)
        username = config["broker"]["username"]
        # Each HQ process its own client id (the HQ broker takes the username as one).
        client_id = "lanehub-hq" if username in ("", "hq") else f"lanehub-{username}"
        self.client = MqttClient(
            config.broker("broker"), client_id, clean_start=True, session_expiry=HQ_SESSION_EXPIRY,
            on_connect=self._connected,
            on_handler_error=self._handler_failed,
            name="HQ broker",
        )
        self.stopped = threading.Event()
        self.wake: WakeListener | None = None
        # Exactly one HQ process publishes sync/down (hq/publisher.py).
        self.lease = PublisherLease(self.db_path, on_taken=lambda: self.apply_worker.submit(self._took_lease),
                                    on_change=lambda: self.apply_worker.submit(self._publish_pending),
                                    name=username or "hq")
        self._up_waiting: collections.deque[Incoming] = collections.deque()
        self._up_scheduled = threading.Lock()  # held while a drain of _up_waiting is queued

    # --- lifecycle -------------------------------------------------------------------

    def _open_writer(self) -> None:
        self.db = HQDatabase(self.db_path, self.codes, self.block_size, wake=False)  # it publishes itself
        # Edges catch up from HQ's log, so HQ starts publishing at the head.
        self.published = self.db.head()

    def _writer(self) -> HQDatabase:
        # Opened by the apply worker's setup, before any of its tasks runs.
        assert self.db is not None, "the apply worker's database is not open"
        return self.db

    def _close_writer(self) -> None:
        if self.db is not None:
            self.db.close()

    def _import_specs(self) -> list[ImportSpec]:
        db = HQDatabase(self.db_path, self.codes, self.block_size)
        try:
            return [ImportSpec.from_config(self.config, kind, TARGETS[kind](db)) for kind in self.config.get("import", {})]
        finally:
            db.close()

    def _sync_field_rules(self) -> None:
        """hq.toml is the truth: a section removed gives its fields back to lanehub."""
        configured = {spec.kind: spec for spec in self.imports}
        db = self._writer()
        for kind, target_class in TARGETS.items():
            target = target_class(db)
            if sync_field_rules(db, configured.get(kind), target, "hq:config"):
                log.info("field rules of %s updated from [import.%s]", target.entity, kind)

    def _open_exporter(self) -> None:
        self.exporter = HQDatabase(self.db_path, self.codes, self.block_size)

    def _close_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.close()

    def _export(self, spec: ImportSpec) -> None:
        try:
            # Opened by the export worker's setup, before any of its tasks runs.
            assert self.exporter is not None, "the export worker's database is not open"
            result = export_changes(self.exporter, spec)
        except Exception:  # a POS drop that is away must not stop HQ; the cursor waits
            log.exception("export to %s failed; retried in %ss", spec.source, spec.export_interval)
            return
        if " exported 0 " not in result:
            log.info("%s", result)

    def _open_reader(self) -> None:
        self.reader = HQDatabase(self.db_path, self.codes, self.block_size)

    def _close_reader(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def _open_snapshot_db(self) -> None:
        self.snapshot_db = HQDatabase(self.db_path, self.codes, self.block_size)

    def _close_snapshot_db(self) -> None:
        if self.snapshot_db is not None:
            self.snapshot_db.close()

    def _refresh_snapshot(self) -> None:
        """A snapshot file when there is none, or when the newest is older than [hq]
        snapshot_refresh and the log has moved since: a new store loads it at once,
        and catches up on at most that much of the log. An HQ on PostgreSQL keeps
        none (the build copies a SQLite file in C): its stores take pages."""
        if is_postgres(self.db_path):
            return
        newest = self.snapshots.newest()
        if newest is not None:
            if time.time() - newest.built_at < self.config["hq"]["snapshot_refresh"]:
                return
            assert self.snapshot_db is not None, "the snapshot worker's database is not open"
            if self.snapshot_db.head() == newest.head:
                return
        self._build_snapshot()

    def _build_snapshot(self) -> Build:
        started = time.monotonic()
        build = self.snapshots.build()
        log.info("snapshot file %s at seq %d: %d bytes in %.1fs", build.id, build.head, build.size,
                 time.monotonic() - started)
        return build

    def _connected(self) -> None:
        self.apply_worker.submit(self._announce_head)

    def start(self) -> "HQService":
        # Open the database first so a bad path fails before we join the broker.
        self.apply_worker.start()
        self.apply_worker.call(lambda: None)
        # hq.toml's [import.*] say which fields external systems own: every store learns it.
        # Checked before anything runs, so a bad section stops HQ with one line.
        self.imports = self._import_specs()
        self.apply_worker.call(self._sync_field_rules)
        exports = [spec for spec in self.imports if spec.export and spec.export_to]
        if exports:
            self.export_worker.start()
            for spec in exports:
                self.export_worker.every(spec.export_interval, functools.partial(self._export, spec))
        self.serve_worker.start()
        self.snapshot_worker.start()
        self.snapshot_worker.submit(self._refresh_snapshot)  # prebuilt: the first new store need not wait for it
        self.snapshot_worker.every(min(60.0, self.config["hq"]["snapshot_refresh"]), self._refresh_snapshot)
        self.apply_worker.call(self._register_broker_user)
        # Shared subscriptions: with several HQ processes each message goes to one of them.
        self.client.subscribe(topics.shared(topics.SYNC_UP_ALL), self._queue_up)
        self.client.subscribe(topics.shared(topics.SYNC_STATUS_ALL), lambda m: self.apply_worker.submit(self._on_status, m))
        self.client.subscribe(topics.shared(topics.SYNC_REQ_ALL), self._route_request)
        self.client.start()
        self.lease.start()
        if not is_postgres(self.db_path):
            self.wake = WakeListener(self.db_path, lambda: self.apply_worker.submit(self._publish_pending)).start()
        self.apply_worker.every(self.config["hq"]["publish_poll"], self._publish_pending)
        self.apply_worker.every(HEAD_INTERVAL, self._announce_head)
        self.apply_worker.every(SAMPLE_CHECK, self._sample_stores)
        self.apply_worker.every(PRUNE_EVERY, self._writer_prune_samples)
        self.apply_worker.submit(self._writer_prune_samples)  # a HQ that was down a week starts tidy
        log.info("HQ running: db %s, broker %s:%s", self.db_path, self.client.settings.host, self.client.settings.port)
        return self

    def broker_links(self) -> dict[str, LinkState]:
        """HQ's broker link as it is now, for the HQ Manager's /healthz."""
        return {"hq_broker": self.client.link}

    def stop(self) -> None:
        if self.wake is not None:
            self.wake.stop()
        self.lease.stop()
        self.client.stop()
        self.apply_worker.stop()
        self.serve_worker.stop()
        self.snapshot_worker.stop()
        self.export_worker.stop()
        self.stopped.set()

    # --- errors --------------------------------------------------------------------------

    def _report(self, store: str | None, msg: Incoming, reason: str) -> None:
        """A bad payload: tell HQ's error topic and, when known, the store that sent it."""
        report = publish_report(self.client, "hq", msg.topic, reason, msg.payload, log)
        if store:
            error = StoreMessage(type="error", error=report.to_dict())
            self.client.publish(topics.sync_store(store), error.to_json())

    def _handler_failed(self, msg: Incoming, exc: Exception) -> None:
        self._report(None, msg, f"internal error: {exc}")

    def _failed(self, store: str | None, msg: Incoming, what: str, exc: Exception) -> None:
        """A bug in handling one message: logged with its traceback, reported to HQ's
        error topic and the store; the worker goes on with the next message."""
        log.exception("%s on %s failed", what, msg.topic)
        self._report(store, msg, f"internal error: {exc}")

    def _store_of(self, msg: Incoming, db: HQDatabase) -> str | None:
        try:
            store = topics.parse(msg.topic).store
        except topics.TopicError as exc:
            self._report(None, msg, str(exc))
            return None
        if store is None or not db.is_store(store):
            self._report(None, msg, f"store {store} is not registered at HQ (lanehub hq store add {store})")
            return None
        return store

    # --- store changes -----------------------------------------------------------------------

    def _queue_up(self, msg: Incoming) -> None:
        # On paho's thread: keep the batch and make sure one drain is queued for it.
        self._up_waiting.append(msg)
        if self._up_scheduled.acquire(blocking=False):
            self.apply_worker.submit(self._drain_up)

    def _drain_up(self) -> None:
        """Apply the waiting up batches in one transaction, then ack each."""
        self._up_scheduled.release()  # batches arriving from now on queue another drain
        db = self._writer()
        while self._up_waiting:
            taken: list[Incoming] = []
            changes = 0
            while self._up_waiting and len(taken) < GROUP_BATCHES and changes < GROUP_CHANGES:
                msg = self._up_waiting.popleft()
                taken.append(msg)
                changes += msg.payload.count(b'"entity"')  # a cheap size guess, not a parse
            acks: list[tuple[str, StoreMessage]] = []
            try:
                with transaction(db.conn):
                    for msg in taken:
                        answer = self._apply_up(db, msg)
                        if answer is not None:
                            acks.append(answer)
            except Exception:
                # The commit failed: nothing of these batches is acked; the stores resend.
                log.exception("%d up batches could not be committed; the stores send them again", len(taken))
                continue
            for store, ack in acks:
                self.client.publish(topics.sync_store(store), ack.to_json())
            self._publish_pending()

    def _apply_up(self, db: HQDatabase, msg: Incoming) -> tuple[str, StoreMessage] | None:
        """One up batch, inside the drain's transaction: the ack to send once it commits."""
        store = self._store_of(msg, db)
        if store is None:
            return None
        try:
            batch = UpBatch.parse(msg.payload)
        except PayloadError as exc:
            self._report(store, msg, str(exc))
            return None
        except Exception as exc:
            self._failed(store, msg, "reading an up batch", exc)
            return None
        if batch.store != store:
            self._report(store, msg, f"batch claims store {batch.store!r} but came on {msg.topic}")
            return None
        try:
            outcomes = db.apply_store_changes(store, batch.changes)  # a savepoint in the drain's transaction
        except Exception:
            # The batch's savepoint is rolled back: each change again on its own, so a
            # change HQ trips over is not acked (the store resends it) and the others are.
            log.exception("up batch of %d changes from %s failed; applying them one by one", len(batch.changes), store)
            outcomes, failures = [], []
            for raw in batch.changes:
                try:
                    outcomes += db.apply_store_changes(store, [raw])
                except Exception as exc:
                    change_id = raw.get("id") if isinstance(raw, dict) else None
                    log.exception("change %s from %s failed", change_id, store)
                    failures.append(f"change {change_id}: {exc}")
            if failures:
                self._report(store, msg, f"internal error: {len(failures)} of {len(batch.changes)} changes not applied "
                                         f"(the store sends them again): {'; '.join(failures)}")
        acked = [o.change_id for o in outcomes if o.ok]
        rejected = tuple(o.rejection() for o in outcomes if not o.ok and not o.deferred)
        for o in outcomes:
            if o.deferred:
                log.info("deferred change %s from %s: %s", o.change_id, store, o.reason)
            elif not o.ok:
                log.warning("rejected change %s from %s: %s", o.change_id, store, o.reason)
        return store, StoreMessage(type="ack", acked=acked, rejected=rejected)

    def _on_status(self, msg: Incoming) -> None:
        if not msg.payload:
            return  # a cleared retained message
        db = self._writer()
        store = self._store_of(msg, db)
        if store is None:
            return
        try:
            status = SyncStatus.parse(msg.payload)
        except PayloadError as exc:
            self._report(store, msg, str(exc))
            return
        try:
            db.record_status(store, status.state, status.pending_up, status.last_seq, status.ts)
            sample_store(db, store)  # a change of state is sampled at once
        except Exception as exc:
            self._failed(store, msg, "a store status", exc)

    def _sample_stores(self) -> None:
        """Every store's lag and outbox, at most a sample a minute each: the lag grows with
        HQ's head even while a store sends no status."""
        db = self._writer()
        for store in db.store_ids():
            sample_store(db, store)

    def _writer_prune_samples(self) -> None:
        prune_samples(self._writer())

    # --- downstream -----------------------------------------------------------------------

    def _register_broker_user(self) -> None:
        """This process's own broker user, in the broker's files with every other HQ
        process's (when this HQ writes them: [broker] passwd_file)."""
        broker = self.config["broker"]
        if broker["username"] and broker["passwd_file"]:
            if self._writer().register_hq_broker_user(broker["username"], broker["password"]):
                broker_files_now(self._writer(), self.config)

    def _took_lease(self) -> None:
        # Publish from the head: what an earlier publisher did not send, stores catch up on.
        self.published = self._writer().head()
        self._announce_head()

    def _publish_pending(self) -> None:
        if not self.lease.held:
            return
        db = self._writer()
        head = db.head()
        while self.published < head:
            page = db.down_page(self.published + 1, DOWN_BATCH)
            if not page:
                break
            payload = down_batch(head, self.published + 1, page)
            while len(payload) > SYNC_MAX_BYTES and len(page) > 1:  # what an edge decodes: fewer, then the rest
                page = page[: len(page) // 2]
                payload = down_batch(head, self.published + 1, page)
            self.client.publish(topics.sync_down(), payload)
            published = page[-1][0].seq
            assert published is not None  # changes from HQ's log carry their seq
            self.published = published

    def _announce_head(self) -> None:
        if not self.lease.held:
            return
        self._publish_pending()
        head = DownBatch(type="head", head=self._writer().head())
        self.client.publish(topics.sync_down(), head.to_json(), retain=True)

    # --- requests -------------------------------------------------------------------------

    def _route_request(self, msg: Incoming) -> None:
        # Code leases write: they go to the apply worker with the other writes. This runs
        # on paho's thread: whatever the payload, the request goes to a worker, which
        # parses it again and answers (a bad one with the reason).
        try:
            op = decode_object(msg.payload).get("op")
        except Exception:
            op = None
        if op == "code_block":
            self.apply_worker.submit(self._on_request, msg, "writer")
        elif op == "snapshot_file":
            self.snapshot_worker.submit(self._on_request, msg, "snapshot")
        else:
            self.serve_worker.submit(self._on_request, msg, "reader")

    def _on_request(self, msg: Incoming, which: str) -> None:
        db = {"writer": self.db, "reader": self.reader, "snapshot": self.snapshot_db}[which]
        # Opened by the serve worker's setup, before any of its tasks runs.
        assert db is not None, "the serve worker's database is not open"
        store = self._store_of(msg, db)
        if store is None:
            return
        try:
            request = SyncRequest.parse(msg.payload)
        except PayloadError as exc:
            self._report(store, msg, str(exc))
            if (msg.response_topic or "").startswith(topics.sync_reply_prefix(store)):
                self.client.reply(msg, SyncReply(ok=False, error=str(exc)).to_json())
            return
        except Exception as exc:
            self._failed(store, msg, "reading a request", exc)
            if (msg.response_topic or "").startswith(topics.sync_reply_prefix(store)):
                self.client.reply(msg, SyncReply(ok=False, error=INTERNAL_ERROR_REPLY).to_json())
            return
        if not msg.response_topic or not msg.response_topic.startswith(topics.sync_reply_prefix(store)):
            # HQ may write anywhere under sync/: never let a store aim a reply at another's topics.
            self._report(store, msg, f"response topic must be under {topics.sync_store(store)}/ (got {msg.response_topic!r})")
            return
        try:
            payload = self._fitted_reply(request, self._answer(db, store, request))
        except (ValueError, PermissionError) as exc:
            self.client.reply(msg, SyncReply(ok=False, error=str(exc)).to_json())
            return
        except Exception as exc:  # a bug answering one request: the store hears of it; the next one is answered
            self._failed(store, msg, f"answering {request.op}", exc)
            self.client.reply(msg, SyncReply(ok=False, error=INTERNAL_ERROR_REPLY).to_json())
            return
        self.client.reply(msg, payload)

    @staticmethod
    def _fitted_reply(request: SyncRequest, reply: ReplyData) -> bytes:
        """The reply, within what an edge decodes (SYNC_MAX_BYTES): a snapshot or
        catch-up page too big (long notes, many sale lines) is cut and the edge asks
        for the rest (``next``, ``more``), as it does for any page."""
        payload = SyncReply(ok=True, data=reply.to_dict()).to_json()
        while len(payload) > SYNC_MAX_BYTES:
            if isinstance(reply, SnapshotReply) and len(reply.rows) > 1:
                rows = reply.rows[: len(reply.rows) // 2]
                reply = dataclasses.replace(reply, rows=rows, next=rows[-1][0])
            elif isinstance(reply, CatchupReply) and len(reply.changes) > 1:
                reply = dataclasses.replace(reply, changes=reply.changes[: len(reply.changes) // 2], more=True)
            else:
                raise ValueError(f"the answer to {request.op} is {len(payload):,} bytes, over the limit of "
                                 f"{SYNC_MAX_BYTES:,} bytes")
            payload = SyncReply(ok=True, data=reply.to_dict()).to_json()
        return payload

    def _answer(self, db: HQDatabase, store: str, request: SyncRequest) -> ReplyData:
        if request.op == "hello":
            return HelloReply(head=db.head(), codes=CodeSettings(prefix=self.codes.prefix, width=self.codes.width),
                              block_size=self.block_size)
        if request.op == "catchup":
            if request.routed:
                changes, through = db.changes_for_store(store, max(request.from_seq, 1), min(request.limit, 5000))
            else:  # an edge from before routes: every change, as it always had (it sees held seqs as gaps)
                changes = db.changes_since(max(request.from_seq, 1), min(request.limit, 5000))
                through = changes[-1].seq or 0 if changes else 0
            head = db.head()
            return CatchupReply(changes=[c.to_dict() for c in changes], head=head, more=bool(changes) and through < head,
                                through=through if request.routed else 0)
        if request.op == "snapshot":
            if request.entity not in ENTITIES:
                raise ValueError(f"unknown entity {request.entity!r}")
            head = db.head()  # read before the page: later changes re-apply harmlessly (LWW)
            # A store's snapshot holds what its route gives it: of the sales, its own.
            only = {STORE_FIELD[request.entity]: store} if route_of(request.entity) == ORIGIN_STORE else None
            columns, rows = db.replica.export_rows(request.entity, request.after, min(request.limit, SNAPSHOT_PAGE_MAX),
                                                   only=only)
            return SnapshotReply(entity=request.entity, columns=columns, rows=rows, head=head,
                                 next=rows[-1][0] if len(rows) == request.limit else None)
        if request.op == "snapshot_file":
            return self._snapshot_chunk(request)
        if request.op == "changes":
            return ChangesReply(changes=change_history(db, "customer", request.customer_id, min(request.limit, 200)))
        if request.op == "history":
            return HistoryReply(history=purchase_history(db.conn, request.customer_id, min(request.limit, 200)))
        if request.op in ("coupon_reserve", "coupon_release"):
            if not request.coupon or not request.ticket:
                raise ValueError(f"{request.op} needs 'coupon' and 'ticket'")
            if request.op == "coupon_release":
                released = HQCoupons(db).release(store, request.coupon, request.ticket)
                return CouponReleaseReply(coupon=released["coupon"], ticket=released["ticket"],
                                          released=released["released"])
            reserved = HQCoupons(db).reserve(store, request.coupon, request.ticket, request.customer_id)
            return CouponReserveReply(coupon=reserved["coupon"], ticket=reserved["ticket"], reserved=reserved["reserved"])
        if request.op == "code_block":
            if not request.lease:
                raise ValueError("code_block needs a 'lease' id")
            block = db.lease_block(store, request.lease, self.max_outstanding_blocks)
            return CodeBlockReply(start=block["start"], end=block["end"], lease=request.lease)
        raise ValueError(f"unknown op {request.op}")


    def _snapshot_chunk(self, request: SyncRequest) -> SnapshotFileReply:
        """A chunk of the snapshot file named (of the newest, built now if there is none)."""
        if is_postgres(self.db_path):
            raise ValueError("this HQ keeps no snapshot files (its database is on PostgreSQL): ask for pages")
        if request.file:
            build = self.snapshots.get(request.file)
            if build is None:
                raise ValueError(f"snapshot file {request.file} is gone (a newer one replaced it): start again")
        else:
            build = self.snapshots.newest() or self._build_snapshot()
        if not 0 <= request.chunk < len(build.chunks):
            raise ValueError(f"snapshot file {build.id} has chunks 0-{len(build.chunks) - 1}, not {request.chunk}")
        return SnapshotFileReply(file=build.id, head=build.head, hlc=build.hlc, chunk=request.chunk,
                                 chunks=len(build.chunks), size=build.size, sha256=build.sha256,
                                 entities=list(build.entities),
                                 data=base64.b64encode(self.snapshots.chunk(build, request.chunk)).decode("ascii"))


def down_batch(head: int, first: int, page: list[tuple[Change, str]]) -> bytes:
    """The sync/down payload covering ``first`` up to the page's last seq: the changes
    for every store, and for each change that goes to one store only, its seq held
    for that store unless the store made it (it has it: D45)."""
    held: dict[str, list[int]] = {}
    for change, to in page:
        if to and change.origin != to:
            held.setdefault(to, []).append(change.seq or 0)
    through = page[-1][0].seq or 0
    return DownBatch(type="changes", head=head, changes=[c.to_dict() for c, to in page if not to],
                     first=first, through=through, held=held).to_json()
