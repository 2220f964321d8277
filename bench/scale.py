"""Snapshot and catch-up at a chain's scale (1M and 3M customers, 1M changes), with
the edge's memory.

- ``edge_memory``: samples ``/proc/<pid>/status`` of the edge process (VmRSS every
  50 ms, VmHWM at the end): the edge runs as its own ``lanehub edge run`` process,
  so the figures are the edge's alone, not the benchmark's.
- ``hq_data``: HQ databases with N customers are generated once into a data
  directory (``--data``) and copied for every run: a 1M bulk load takes minutes.
- ``bulk_changes``: M customer edits written straight into HQ's change log, as
  HQ's own writes would be logged (a week of a busy chain); a store that was off
  meanwhile catches up on them.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from pathlib import Path

from lanehub.chain.local import Chain
from lanehub.protocol.change import new_id

MIB = 1024 * 1024


class EdgeMemory:
    """Peak and current RSS of one process, sampled from /proc (Linux)."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak_sampled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def start(self) -> "EdgeMemory":
        self._thread.start()
        return self

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM in bytes ({} once the process is gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return {}
        figures = {}
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0]) * 1024
        return figures

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.status().get("VmRSS", 0)
            self.peak_sampled = max(self.peak_sampled, rss)

    def figures(self) -> dict[str, float]:
        """The high-water mark (the kernel's, so no peak between samples is missed), RSS now,
        and what the process has written to disk so far (WAL, checkpoints), MiB."""
        now = self.status()
        return {"peak_rss_mib": round(max(now.get("VmHWM", 0), self.peak_sampled) / MIB, 1),
                "rss_mib": round(now.get("VmRSS", 0) / MIB, 1), "written_mib": round(self.written() / MIB)}

    def written(self) -> int:
        try:
            lines = Path(f"/proc/{self.pid}/io").read_text().splitlines()
        except OSError:
            return 0
        return next((int(line.split()[1]) for line in lines if line.startswith("write_bytes:")), 0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def edge_pid(chain: Chain, store: str) -> int:
    process = chain.edges[store].process
    assert process is not None, f"edge {store} is not running"
    return process.pid


def hq_data(data: Path | None, workdir: Path, count: int) -> Path:
    """A bulk-loaded HQ database with ``count`` customers: from ``data`` when it
    has one, else generated (into ``data`` when given, to be reused)."""
    from bench.sync import bulk_load_hq

    home = data or workdir
    home.mkdir(parents=True, exist_ok=True)
    path = home / f"hq-{count}.db"
    if not path.exists():
        partial = home / f"hq-{count}.db.partial"
        for stale in (partial, partial.with_name(partial.name + "-wal"), partial.with_name(partial.name + "-shm")):
            stale.unlink(missing_ok=True)
        bulk_load_hq(partial, count)
        partial.rename(path)  # only a whole load is reused
    return path


def chain_with_data(workdir: Path, data: Path | None, customers: int, stores: tuple[str, ...] = ("S001",)) -> Chain:
    """A chain whose HQ database starts as a copy of the generated one (brokers up,
    stores registered, nothing else started)."""
    source = hq_data(data, workdir.parent, customers)
    chain = Chain(workdir, stores, log_level="INFO")
    shutil.copyfile(source, chain.workdir / "hq.db")
    chain.start_brokers()
    chain.register_stores()
    return chain


def bulk_changes(path: Path, count: int, seed: int = 11, chunk: int = 50_000) -> int:
    """``count`` edits of existing customers appended to HQ's change log (the kind a
    week of a busy chain makes: addresses, phones, e-mails, now and then a name, which
    the edge re-indexes), stamped after everything in the log. Returns HQ's head.

    Only the log is written, not HQ's replica: a catch-up reads nothing else."""
    from hq.db import HQDatabase
    from lanehub.domain.codes import CodeFormat
    from lanehub.replication.sqlite import transaction

    rng = random.Random(seed)
    db = HQDatabase(path, CodeFormat())
    keys = [row[0] for row in db.conn.execute("SELECT id FROM customers")]
    last = db.conn.execute("SELECT max(hlc) FROM changes").fetchone()[0] or "0000000000000-000000"
    base_ms = max(int(last.split("-")[0]) + 1, int(time.time() * 1000) - 3_600_000)
    written = 0
    while written < count:
        rows = []
        for i in range(written, min(written + chunk, count)):
            kind = rng.random()
            if kind < 0.4:
                fields = {"city": rng.choice(("Madrid", "Bilbao", "Sevilla", "Vigo", "Gijón")), "postcode": f"{rng.randrange(10**5):05d}"}
            elif kind < 0.7:
                fields = {"phone": f"+34 6{rng.randrange(10**7, 10**8):08d}"}
            elif kind < 0.9:
                fields = {"email": f"c{i}@example.org"}
            else:
                fields = {"last_name": rng.choice(("Ortega", "Navarro", "Castro", "Vidal", "Iglesias"))}
            fields |= {"updated_at": "2026-12-04T10:00:00+00:00", "updated_by": "bench"}
            hlc = f"{base_ms + i // 1000:013d}-{i % 1000:06d}"
            rows.append((new_id(), "customer", rng.choice(keys), "hq", hlc, "bench",
                         json.dumps(fields, separators=(",", ":")), time.time()))
        with transaction(db.conn):
            db.conn.executemany("INSERT INTO changes (id, entity, key, origin, hlc, by, fields, received_at) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        written += len(rows)
    head = db.head()
    db.close()
    return head


def _started_hq(chain: Chain) -> None:
    assert chain.hq is not None  # register_stores made it
    chain.hq.start()
    chain.hq.wait_for_log("lanehub-hq: connected", 60)


def _ready_edge(chain: Chain, store: str, timeout: float) -> tuple[float, EdgeMemory]:
    """Start the store's edge and wait for its snapshot: (seconds, its memory sampler)."""
    from bench.sync import _reader, _snapshot_done, _wait

    started = time.monotonic()
    chain.edges[store].start()
    memory = EdgeMemory(edge_pid(chain, store)).start()
    path = chain.workdir / f"{store}.db"
    _wait(lambda: path.exists(), 30, 0.01)
    reader = _reader(path)
    try:
        _wait(lambda: _snapshot_done(reader), timeout, 0.02)
    finally:
        reader.close()
    return time.monotonic() - started, memory


def bench_snapshot(workdir: Path, count: int, data: Path | None = None, settle: float = 3.0) -> dict:
    """A new store's snapshot of ``count`` customers: edge start -> ``snapshot_done``,
    and the edge's peak RSS during it and its RSS ``settle`` seconds after. S001 is
    the first store to ask (HQ builds its snapshot file then: cold); S002 comes
    after it (the file is there, as HQ's refresh keeps one: warm)."""
    from bench.sync import _reader

    chain = chain_with_data(workdir / f"snapshot-{count}", data, count, ("S001", "S002"))
    try:
        _started_hq(chain)
        figures: dict = {"customers": count}
        for store, kind in (("S001", "cold"), ("S002", "warm")):
            seconds, memory = _ready_edge(chain, store, 1800)
            during = memory.figures()["peak_rss_mib"]
            reader = _reader(chain.workdir / f"{store}.db")
            try:
                applied = reader.execute("SELECT count(*) FROM customers").fetchone()[0]
            finally:
                reader.close()
            time.sleep(settle)
            after = memory.figures()
            memory.stop()
            chain.edges[store].stop()  # the next store's figures are its own, not two edges on two cores
            assert applied == count, f"{store}'s snapshot has {applied} of {count} customers"
            figures[kind] = {"store": store, "snapshot_s": round(seconds, 2), "edge_peak_rss_mib": during,
                             "edge_rss_after_mib": after["rss_mib"], "edge_peak_rss_after_mib": after["peak_rss_mib"]}
        return figures
    finally:
        chain.stop()


class DownWatcher:
    """A registered store with no edge, listening to sync/down: how far HQ has published."""

    def __init__(self, chain: Chain, store: str):
        from lanehub.protocol import topics
        from lanehub.runtime.mqtt import BrokerSettings, MqttClient

        self.through = 0
        self.client = MqttClient(BrokerSettings(port=chain.hq_broker.port, username=store,
                                                password=chain.store_passwords[store]), f"bench-{store}")
        self.client.subscribe(topics.sync_down(), self._down)
        self.client.start()
        self.client.wait_connected(10)

    def _down(self, msg) -> None:
        self.through = max(self.through, int(json.loads(msg.payload).get("through") or 0))

    def stop(self) -> None:
        self.client.stop()


def bench_catchup(workdir: Path, changes: int = 10_000, customers: int = 1000, data: Path | None = None) -> dict:
    """A store off while ``changes`` changes were made (HQ published them meanwhile,
    so they also wait in its broker session): from its restart until it has applied
    HQ's head, and the edge's peak RSS over that time."""
    from bench.sync import _last_seq, _reader, _wait

    chain = chain_with_data(workdir / "catchup", data, customers, ("S001", "W001"))
    watcher = None
    try:
        _started_hq(chain)
        _, memory = _ready_edge(chain, "S001", 1800)
        memory.stop()
        chain.edges["S001"].stop()
        watcher = DownWatcher(chain, "W001")
        head = bulk_changes(chain.workdir / "hq.db", changes)
        _wait(lambda: watcher.through >= head, 600, 0.1)  # the week is in the broker's queue for S001 too
        watcher.stop()
        watcher = None
        reader = _reader(chain.workdir / "S001.db")
        behind = head - _last_seq(reader)
        started = time.monotonic()
        chain.edges["S001"].start()
        memory = EdgeMemory(edge_pid(chain, "S001")).start()
        try:
            _wait(lambda: _last_seq(reader) >= head, 1800, 0.005)
        finally:
            reader.close()
        seconds = time.monotonic() - started
        figures = memory.figures()
        memory.stop()
        return {"customers": customers, "changes_behind": behind, "catchup_s": round(seconds, 2),
                "changes_per_s": round(behind / seconds), "edge_peak_rss_mib": figures["peak_rss_mib"],
                "edge_rss_mib": figures["rss_mib"], "edge_written_mib": figures["written_mib"]}
    finally:
        if watcher is not None:
            watcher.stop()
        chain.stop()
