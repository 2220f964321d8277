"""`lanehub bench chain`: many simulated stores against a real HQ (not a test).

A simulated store is not an edge: it is one MQTT client with the store's own
broker credentials that speaks the real sync protocol — ``hello``, a code lease
(``code_block``), up batches of customer creates acked on ``sync/store/{store}``,
and the downstream stream on ``sync/down`` with gap detection (a seq missing
between batches is counted and asked for with ``catchup``) — so one machine can
hold hundreds of them against a real HQ process and a real HQ broker.

Figures: the store changes per second HQ applies (acked) while every store
pushes, store → HQ ack latency, HQ → every store fan-out latency (from the ack at
the creating store until the change's down batch reaches each other store, over
a sample of changes), the gaps found, and HQ's resident memory. HQ on SQLite with
one process, or on PostgreSQL with one or more processes sharing the stores; a
failover run SIGKILLs the publishing HQ process under load and times until another
has taken the publisher lease (docs/benchmarks.md, "Chain"; docs/scaling.md).
"""

from __future__ import annotations

import multiprocessing
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.sync import _wait, percentile
from hq.db import HQDatabase
from lanehub.chain.mosquitto import Mosquitto
from lanehub.chain.processes import ServiceProcess, run_lanehub
from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import CUSTOMER_DEFAULTS
from lanehub.protocol import topics
from lanehub.protocol.acl import HQ_BROKER_MESSAGE_LIMIT, hq_acl_file, new_password
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.hlc import HybridLogicalClock, now_iso
from lanehub.protocol.sync import (
    REPLY_TYPES,
    CodeBlockReply,
    HelloReply,
    StoreMessage,
    SyncReply,
    SyncRequest,
    UpBatch,
)
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

CODES = CodeFormat(prefix="CUST-", width=7)
BLOCK = 1000  # numbers per lease: a store pushing for the whole run never waits for codes
SAMPLE_EVERY = 25  # every 25th change sent is followed to the observing stores (fan-out)
CONNECT_WAVE = 50  # stores of a fleet connecting at once
STORES_PER_FLEET = 250  # simulated stores per process
OBSERVERS = 20  # stores, spread over the subscription order, that time the fan-out
RESEND_AFTER = 2.0  # seconds an unacked batch waits before it is sent again (an edge's outbox retry)
LEASE_TAKEN = "took the publisher lease"
# A down batch's sequence range, read from its tail without decoding the batch: a
# thousand stores decoding every batch would measure this process, not HQ.
RANGE_RE = re.compile(rb'"first":(\d+),"through":(\d+)')
TYPE_CHANGES = b'"type":"changes"'


@dataclass
class Counters:
    """What every simulated store reports, shared under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, float] = field(default_factory=dict)  # change id -> publish time
    pushed: int = 0  # changes sent, for picking the sample
    sampled: set[str] = field(default_factory=set)  # change ids followed to the observers
    acked_at: dict[str, float] = field(default_factory=dict)  # sampled change id -> ack time
    ack_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    acked: int = 0
    rejected: int = 0
    gaps: int = 0
    resent: int = 0


class SimulatedStore:
    """One store's sync client: the real protocol, none of an edge's database."""

    def __init__(self, store: str, password: str, port: int, counters: Counters, observer: bool):
        self.store = store
        self.counters = counters
        self.observer = observer  # times the fan-out of the sampled changes
        self.clock = HybridLogicalClock()
        self.last_seq = 0
        self.numbers: list[int] = []
        self.in_flight = threading.Event()  # set while a batch waits for its ack
        self.waiting: tuple[float, bytes, tuple[str, ...]] | None = None  # the unacked batch: sent when, it, its ids
        self.client = MqttClient(BrokerSettings(port=port, username=store, password=password),
                                 f"lanehub-edge-{store}", name=f"bench {store}")
        self.client.subscribe(topics.sync_store(store), self._on_store)
        self.client.subscribe(topics.sync_down(), self._on_down)
        # Replies to requests come on the store's reply topics (MqttClient.request waits for them).
        self.client.subscribe(topics.sync_replies_filter(store), lambda msg: None)

    def start(self) -> None:
        self.client.start()

    def hello(self, timeout: float = 30) -> None:
        """hello for HQ's head (where this store's stream starts), then a code lease."""
        hello = self._request(SyncRequest(op="hello"), timeout)
        assert isinstance(hello, HelloReply)
        self.last_seq = hello.head
        block = self._request(SyncRequest(op="code_block", lease=new_id()), timeout)
        assert isinstance(block, CodeBlockReply)
        self.numbers = list(range(block.start, block.end + 1))

    def _request(self, request: SyncRequest, timeout: float):
        reply = self.client.request(topics.sync_req(self.store), request.to_json(), topics.sync_reply(self.store), timeout)
        answer = SyncReply.parse(reply.payload)
        if not answer.ok:
            raise RuntimeError(f"{self.store}: HQ refused {request.op}: {answer.error}")
        return REPLY_TYPES[request.op].from_dict(answer.data)

    def push(self, count: int) -> bool:
        """Send ``count`` customer creates in one up batch, unless the last is unacked
        (then send that one again once it has waited RESEND_AFTER: HQ applies it once)."""
        if self.in_flight.is_set():
            self.resend_due()
            return False
        if len(self.numbers) < count:
            return False
        changes, now = [], time.perf_counter()
        for _ in range(count):
            key, stamp = new_id(), now_iso()
            record = dict(CUSTOMER_DEFAULTS) | {
                "first_name": "Bench", "last_name": self.store, "code": CODES.format(self.numbers.pop(0)),
                "origin_store": self.store, "created_at": stamp, "created_by": "bench", "updated_at": stamp,
                "updated_by": "bench"}
            changes.append(Change(new_id(), "customer", key, self.store, self.clock.now(), "bench", record))
        with self.counters.lock:
            for change in changes:
                self.counters.sent[change.id] = now
                if self.counters.pushed % SAMPLE_EVERY == 0:
                    self.counters.sampled.add(change.id)
                self.counters.pushed += 1
        self.in_flight.set()
        payload = UpBatch(store=self.store, changes=[change.to_dict() for change in changes]).to_json()
        self.waiting = (time.perf_counter(), payload, tuple(change.id for change in changes))
        self.client.publish(topics.sync_up(self.store), payload)
        return True

    def resend_due(self) -> None:
        """The unacked batch again, once it has waited RESEND_AFTER (the HQ process that
        had it may be gone; HQ applies a change once, whatever number of copies arrive)."""
        waiting = self.waiting
        if waiting is not None and time.perf_counter() - waiting[0] > RESEND_AFTER:
            self.waiting = (time.perf_counter(), waiting[1], waiting[2])
            self.client.publish(topics.sync_up(self.store), waiting[1])
            with self.counters.lock:
                self.counters.resent += 1

    def _on_store(self, msg) -> None:
        ack = StoreMessage.parse(msg.payload)
        if ack.type != "ack":
            return
        now = time.perf_counter()
        with self.counters.lock:
            for change_id in ack.acked:
                sent = self.counters.sent.pop(change_id, None)
                if sent is not None:
                    self.counters.ack_ms.append((now - sent) * 1000)
                    self.counters.acked += 1
                    if change_id in self.counters.sampled:
                        self.counters.acked_at[change_id] = now
            self.counters.rejected += len(ack.rejected)
            waiting = self.waiting
            unacked = waiting is not None and any(change_id in self.counters.sent for change_id in waiting[2])
        if not unacked:  # a second ack of a resent batch finds nothing waiting either
            self.waiting = None
            self.in_flight.clear()

    def _on_down(self, msg) -> None:
        payload = msg.payload
        if TYPE_CHANGES not in payload:
            return  # the retained head
        now = time.perf_counter()
        at = payload.rfind(b'"first":')
        seqs = RANGE_RE.match(payload, at) if at >= 0 else None
        if seqs is None:
            return
        first, through = int(seqs[1]), int(seqs[2])
        if first > self.last_seq + 1:
            # What an edge does on a gap: ask for the missing changes (counted, not applied here).
            with self.counters.lock:
                self.counters.gaps += 1
        self.last_seq = max(self.last_seq, through)
        if not self.observer:
            return
        with self.counters.lock:
            followed = list(self.counters.acked_at.items())
        found = [(now - acked) * 1000 for change_id, acked in followed if change_id.encode() in payload]
        if found:
            with self.counters.lock:
                self.counters.fanout_ms.extend(found)

    def stop(self) -> None:
        self.client.stop()


def _rss_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def register_stores(db_target: str, count: int) -> dict[str, str]:
    """``count`` stores registered at HQ the way `lanehub hq store add` does."""
    db = HQDatabase(db_target, CODES)
    try:
        return {f"B{n:04d}": db.add_store(f"B{n:04d}") for n in range(1, count + 1)}
    finally:
        db.close()


@dataclass(frozen=True)
class FleetPlan:
    """What one fleet process runs: its stores and the load."""

    port: int
    stores: dict[str, str]  # store -> broker password
    observers: frozenset[str]
    seconds: float
    batch: int
    interval: float


def run_fleet(plan: FleetPlan, ready, go, results) -> None:
    """A process's share of the simulated stores (paho waits with select(), which takes
    file descriptors below 1,024: at three per client, about 300 clients a process)."""
    counters = Counters()
    simulated = [SimulatedStore(store, password, plan.port, counters, store in plan.observers)
                 for store, password in plan.stores.items()]
    try:
        for wave in range(0, len(simulated), CONNECT_WAVE):  # stores coming online, not all in one instant
            group = simulated[wave:wave + CONNECT_WAVE]
            for sim in group:
                sim.start()
            _wait(lambda: all(sim.client.wait_connected(0) for sim in group), 120, 0.05)
            for sim in group:
                sim.hello()
        ready.put(len(simulated))
        go.wait()
        started = time.perf_counter()
        while time.perf_counter() - started < plan.seconds:
            round_started = time.perf_counter()
            for sim in simulated:
                sim.push(plan.batch)
            time.sleep(max(0.0, plan.interval - (time.perf_counter() - round_started)))
        with counters.lock:
            sent = counters.acked + len(counters.sent)
        deadline = time.perf_counter() + 300
        while counters.sent and time.perf_counter() < deadline:  # every change acked, resending what waits
            for sim in simulated:
                sim.resend_due()
            time.sleep(0.05)
        acked_s = time.perf_counter() - started
        time.sleep(2.0)  # the last down batches reach the observers
        with counters.lock:
            results.put({"sent": sent, "acked": counters.acked, "rejected": counters.rejected, "gaps": counters.gaps,
                         "resent": counters.resent, "acked_s": acked_s, "ack_ms": counters.ack_ms,
                         "fanout_ms": counters.fanout_ms})
    finally:
        for sim in simulated:
            sim.stop()


def _figures(values: list[float]) -> dict:
    if not values:
        return {}
    return {"samples": len(values), "p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
            "max": round(max(values), 1)}


def postgres_schema(url: str) -> str:
    """``url`` narrowed to a new empty schema of its own (a run never meets another's data)."""
    import uuid
    from urllib.parse import quote

    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return url + ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}", safe="")


def hq_process(workdir: Path, db: str, username: str, broker: Mosquitto, password: str) -> ServiceProcess:
    """An HQ process on ``db`` with its own broker user (it registers it when it starts)."""
    process = ServiceProcess("hq", username, {
        "hq": {"db": db},
        "broker": {"host": "127.0.0.1", "port": broker.port, "username": username, "password": password,
                   "passwd_file": str(broker.passwd_path), "acl_file": str(broker.acl_path),
                   "reload_command": broker.reload_command},
        "codes": {"prefix": CODES.prefix, "width": CODES.width, "block_size": BLOCK,
                  "max_outstanding_blocks": 3},
        "web": {"port": 0},
        "log": {"level": "INFO"}}, workdir / username)
    process.write_config()
    return process


def _publisher(processes: list[ServiceProcess]) -> ServiceProcess | None:
    for process in processes:
        if process.log_path.exists() and LEASE_TAKEN in process.log_path.read_text(errors="replace"):
            return process
    return None


def bench_chain(workdir: Path, stores: int, seconds: float, batch: int, interval: float, *, db: str | None = None,
                processes: int = 1, kill_after: float | None = None) -> dict:
    """Every store pushes an up batch of ``batch`` creates every ``interval`` seconds
    (no more than one unacked) for ``seconds``; then the figures. ``db``: HQ's
    database (a SQLite file in ``workdir`` unless a postgresql:// URL of an empty
    schema); ``processes`` HQ processes share it; ``kill_after``: SIGKILL the
    publishing one that many seconds into the load."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = db or str(workdir / "hq.db")
    hq_password = new_password()
    broker = Mosquitto(workdir / "hq-broker", users={"hq": hq_password}, acl=hq_acl_file("hq", []),
                       username_as_clientid=True, message_size_limit=HQ_BROKER_MESSAGE_LIMIT)
    hqs: list[ServiceProcess] = []
    fleets: list = []
    context = multiprocessing.get_context("spawn")  # the fleets start clean, not as forks of a threaded process
    failover: dict = {}
    try:
        broker.start()
        started = time.monotonic()
        passwords = register_stores(db, stores)
        hqs.append(hq_process(workdir, db, "hq", broker, hq_password))
        run_lanehub("hq", "broker-files", "-c", str(hqs[0].config_path))
        for n in range(2, processes + 1):
            hqs.append(hq_process(workdir, db, f"hq-{n}", broker, new_password()))
        for hq in hqs:
            hq.start()
            hq.wait_for_log(f"lanehub-{hq.name}: connected", 60)
            assert hq.process is not None
        _wait(lambda: _publisher(hqs) is not None, 30, 0.1)
        setup_s = time.monotonic() - started
        names = list(passwords)
        spread = max(1, stores // OBSERVERS)
        observers = frozenset(names[::spread])
        ready, results, go = context.Queue(), context.Queue(), context.Event()
        for first in range(0, stores, STORES_PER_FLEET):
            plan = FleetPlan(broker.port, {name: passwords[name] for name in names[first:first + STORES_PER_FLEET]},
                             observers, seconds, batch, interval)
            fleets.append(context.Process(target=run_fleet, args=(plan, ready, go, results), daemon=True))
            fleets[-1].start()
        online = sum(ready.get(timeout=600) for _ in fleets)
        connected_s = time.monotonic() - started - setup_s
        rss = {hq.name: _rss_kib(hq.process.pid)["VmRSS"] for hq in hqs if hq.process}
        idle, peak = dict(rss), dict(rss)
        go.set()
        load_started = time.monotonic()
        parts: list[dict] = []
        while len(parts) < len(fleets):
            if kill_after is not None and not failover and time.monotonic() - load_started >= kill_after:
                victim = _publisher(hqs)
                assert victim is not None and victim.process is not None
                failover = {"killed": victim.name, "at_s": round(time.monotonic() - load_started, 1)}
                victim.kill()
                killed_at = time.monotonic()
                survivors = [hq for hq in hqs if hq is not victim]
                # A survivor's log says when it took the lease (its earlier lines do not).
                marks = {hq.name: hq.log_path.read_text(errors="replace").count(LEASE_TAKEN) for hq in survivors}
                _wait(lambda: any(hq.log_path.read_text(errors="replace").count(LEASE_TAKEN) > marks[hq.name]
                                  for hq in survivors), 30, 0.05)
                failover["lease_moved_s"] = round(time.monotonic() - killed_at, 2)
            try:
                parts.append(results.get(timeout=0.5))
            except queue.Empty:
                for hq in hqs:
                    if hq.process and hq.process.poll() is None:
                        peak[hq.name] = max(peak[hq.name], _rss_kib(hq.process.pid)["VmRSS"])
                if not any(fleet.is_alive() for fleet in fleets):
                    raise RuntimeError("the simulated stores' processes ended without results") from None
        acked = sum(part["acked"] for part in parts)
        result = {
            "hq_db": "postgresql" if db.startswith("postgresql") else "sqlite", "hq_processes": processes,
            "stores": online, "fleet_processes": len(fleets), "batch": batch, "interval_s": interval,
            "load_s": seconds, "setup_s": round(setup_s, 1), "connect_and_lease_s": round(connected_s, 1),
            "changes_sent": sum(part["sent"] for part in parts), "changes_acked": acked,
            "rejected": sum(part["rejected"] for part in parts), "gaps": sum(part["gaps"] for part in parts),
            "resent_batches": sum(part["resent"] for part in parts),
            "applied_per_s": round(acked / max(part["acked_s"] for part in parts)),
            "ack_ms": _figures([v for part in parts for v in part["ack_ms"]]),
            "fanout_ms": _figures([v for part in parts for v in part["fanout_ms"]]),
            "hq_rss_mib": {name: {"idle": round(idle[name] / 1024), "peak": round(peak[name] / 1024)} for name in idle},
        }
        if failover:
            # Lost: a change sent and never acked (run_fleet waits up to 300 s for every ack).
            result["failover"] = failover | {"lost": result["changes_sent"] - acked}
        return result
    finally:
        for fleet in fleets:
            fleet.join(10)
            if fleet.is_alive():
                fleet.kill()
        for hq in hqs:
            hq.stop()
        broker.stop()
