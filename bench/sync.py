"""Sync benchmarks on real brokers and real processes (not tests).

- hq_to_store: a change written at HQ until it is applied in every store's
  SQLite (10 stores), p50/p99;
- store_to_store: a customer created at a lane of S001 until it is applied
  at S002;
- snapshot and catchup: in bench/scale.py (with the edge's memory);
- reconnect: the HQ broker away 8, 9, 10 and 11 s while two stores each create
  a customer, from its return until both stores have both customers.

"Applied" is read from each store's SQLite file (read-only connections polled
every millisecond), never from the broker, so every figure includes the
edge's transaction.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import statistics
import time
import uuid
from pathlib import Path

from bench import topics as bench_topics
from lanehub.chain.demo_data import demo_customers
from lanehub.chain.local import Chain
from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import ENTITIES
from lanehub.protocol import topics
from lanehub.protocol.change import FieldClocks, new_id
from lanehub.replication.sqlite import transaction
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

ZERO_MS = 1_600_000_000_000


def _reader(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:  # the edge has created the file but not migrated it yet
        return None
    return row[0] if row else None


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(_meta(conn, "last_seq") or 0)


def _snapshot_done(conn: sqlite3.Connection) -> bool:
    return _meta(conn, "snapshot_done") == "1"


def _wait(predicate, timeout: float, interval: float = 0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark step timed out")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def bulk_write(db, entity: str, items, chunk: int = 50_000) -> int:
    """Write ``(key, fields)`` records at HQ exactly as HQ holds its own writes
    (record, clocks, search keys, change log with seq), inside the caller's
    transaction, at raw ``executemany`` speed. Returns how many were written."""
    spec = ENTITIES[entity]
    stamp_base = int(time.time() * 1000) - 60_000
    written = 0
    items = iter(items)
    while True:
        records, log = [], []
        for key, fields in itertools.islice(items, chunk):
            hlc = f"{stamp_base:013d}-{written % 1_000_000:06d}"
            if written % 1_000_000 == 999_999:
                stamp_base += 1
            fields = dict(spec.defaults) | fields
            records.append({"id": key, **fields, "_clocks": FieldClocks({n: f"{hlc}|hq" for n in spec.fields}).dump()})
            log.append((new_id(), entity, key, "hq", hlc, "bench", json.dumps(fields, separators=(",", ":")), time.time()))
            written += 1
        if not records:
            return written
        db.replica.load(entity, records, empty=True)
        db.conn.executemany("INSERT INTO changes (id, entity, key, origin, hlc, by, fields, received_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", log)


def bulk_load_hq(path: Path, count: int) -> float:
    """Load ``count`` demo customers at HQ in one transaction. Returns seconds."""
    from hq.db import HQDatabase

    started = time.monotonic()
    db = HQDatabase(path, CodeFormat())
    codes = db.codes
    people = demo_customers(count, seed=7)
    with transaction(db.conn):
        bulk_write(db, "customer", ((new_id(), next(people) | {"code": codes.format(i + 1), "created_by": "bench"})
                                    for i in range(count)))
        db.replica.rebuild_fts()
        db.meta.set("next_code", count + 1)
    db.close()
    return time.monotonic() - started


def _start_chain(workdir: Path, stores: int, customers: int) -> Chain:
    chain = Chain(workdir, tuple(f"S{i:03d}" for i in range(1, stores + 1)), log_level="INFO")
    chain.start_brokers()
    chain.register_stores()
    bulk_load_hq(chain.workdir / "hq.db", customers)
    hq_service = chain.hq
    assert hq_service is not None  # register_stores made it
    hq_service.start()
    hq_service.wait_for_log("lanehub-hq: connected", 60)
    for edge in chain.edges.values():
        edge.start()
    for store in chain.stores:
        path = chain.workdir / f"{store}.db"
        _wait(lambda p=path: p.exists(), 60, 0.05)
        reader = _reader(path)
        _wait(lambda r=reader: _snapshot_done(r), 300, 0.05)
        reader.close()
    return chain


def bench_latency(workdir: Path, stores: int, samples: int, customers: int = 1000) -> dict:
    from hq.db import HQDatabase

    chain = _start_chain(workdir / "latency", stores, customers)
    try:
        readers = {s: _reader(chain.workdir / f"{s}.db") for s in chain.stores}
        hq = HQDatabase(chain.workdir / "hq.db", CodeFormat())
        keys = [row[0] for row in hq.conn.execute("SELECT id FROM customers LIMIT ?", (samples,))]
        hq_to_store: list[float] = []
        for i, key in enumerate(keys):
            hq.update_customer(key, {"city": f"Bench{i}"}, "bench")
            written = time.monotonic()
            head = hq.head()
            pending = set(readers)
            while pending:
                for store in list(pending):
                    if _last_seq(readers[store]) >= head:
                        hq_to_store.append((time.monotonic() - written) * 1000)
                        pending.discard(store)
                time.sleep(0.0005)
                if time.monotonic() - written > 30:
                    raise TimeoutError("HQ change did not reach every store")
            time.sleep(0.02)
        hq.close()

        lane = MqttClient(BrokerSettings(port=chain.store_brokers["S001"].port), "bench-lane")
        lane.start()
        lane.wait_connected(10)
        lane.subscribe(bench_topics.REPLIES, lambda m: None)
        time.sleep(0.2)
        other = readers["S002"]
        store_to_store: list[float] = []
        for i in range(samples):
            request = {"v": 1, "op": "create", "id": str(uuid.uuid4()), "customer": {"first_name": f"B{i}", "last_name": "Bench"}}
            started = time.monotonic()
            reply = json.loads(lane.request(topics.customer_req("S001", "L1"), json.dumps(request).encode(),
                                            bench_topics.LANE_REPLY, 10).payload)
            key = reply["customer"]["id"]
            _wait(lambda: other.execute("SELECT 1 FROM customers WHERE id = ?", (key,)).fetchone(), 30, 0.0005)
            store_to_store.append((time.monotonic() - started) * 1000)
            time.sleep(0.02)
        lane.stop()
        for reader in readers.values():
            reader.close()
        return {
            "stores": stores, "samples": samples,
            "hq_to_store_ms": {"p50": round(percentile(hq_to_store, 50), 1), "p99": round(percentile(hq_to_store, 99), 1),
                               "max": round(max(hq_to_store), 1), "mean": round(statistics.mean(hq_to_store), 1)},
            "store_to_store_ms": {"p50": round(percentile(store_to_store, 50), 1), "p99": round(percentile(store_to_store, 99), 1),
                                  "max": round(max(store_to_store), 1), "mean": round(statistics.mean(store_to_store), 1)},
        }
    finally:
        chain.stop()


def bench_reconnect(workdir: Path, aways: tuple[float, ...] = (8.0, 9.0, 10.0, 11.0), customers: int = 1000) -> dict:
    """The HQ broker goes away (for each of ``aways`` seconds in turn: long enough for
    every client's reconnect back-off to grow, and at different phases of it), each of
    two stores creates a customer at a lane meanwhile, the broker comes back: the
    time until both stores have both customers."""
    chain = _start_chain(workdir / "reconnect", 2, customers)
    try:
        readers = {s: _reader(chain.workdir / f"{s}.db") for s in chain.stores}
        lanes = {}
        for store in chain.stores:
            lane = MqttClient(BrokerSettings(port=chain.store_brokers[store].port), f"bench-lane-{store}")
            lane.start()
            lane.wait_connected(10)
            lane.subscribe(bench_topics.REPLIES, lambda m: None)
            lanes[store] = lane
        time.sleep(0.2)
        converged = []
        for away in aways:
            chain.hq_broker.stop()
            gone = time.monotonic()
            made = []
            for store, lane in lanes.items():
                request = {"v": 1, "op": "create", "id": str(uuid.uuid4()),
                           "customer": {"first_name": store, "last_name": f"Away{away}"}}
                reply = json.loads(lane.request(topics.customer_req(store, "L1"), json.dumps(request).encode(),
                                                bench_topics.lane_reply(store), 10).payload)
                made.append(reply["customer"]["id"])
            time.sleep(max(0.0, away - (time.monotonic() - gone)))
            returned = time.monotonic()
            chain.hq_broker.start()
            _wait(lambda: all(r.execute("SELECT count(*) FROM customers WHERE id IN (?, ?)", made).fetchone()[0] == 2
                              for r in readers.values()), 60, 0.002)
            converged.append(round(time.monotonic() - returned, 2))
        for lane in lanes.values():
            lane.stop()
        for reader in readers.values():
            reader.close()
        return {"broker_away_s": list(aways), "converged_s": converged, "converged_max_s": max(converged)}
    finally:
        chain.stop()
