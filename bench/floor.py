"""The floors under the lane benchmark's scan figures (issue 17): what the same
broker, the same client class and the same schedule cost with (almost) no lanehub
in the answer, measured in the same run so the ratio of a scan's figure to its
floor's compares across machines.

- the **echo** floor: a responder republishes each payload, on paho's network
  thread, to the answer topic. A broker round trip each way and nothing else;
- the **durable** floor: the same, but the responder first makes the message
  durable as the edge makes a scan durable before it publishes its state: handed
  to a worker thread (lanehub.runtime.worker, the edge's lane worker's class),
  one row inserted and committed through lanehub.replication.sqlite's connection
  (WAL, ``synchronous=FULL``), in a file beside the edge's database (same disk),
  and only then republished. Messages that queued up meanwhile are committed in
  one transaction of up to the edge's batch size, as the edge does (decisions
  D22): at low rates that is one commit per message.

Both responders run in the load generator's process, each on its own client and
connection: only lanehub/chain starts long-running processes. (A prototype with the
echo in a process of its own measured ~0.3 ms more at 5/s and the same at 200/s:
docs/benchmarks.md.)
"""

from __future__ import annotations

import collections
import json
import sqlite3
import time
import uuid
from pathlib import Path

from bench import topics
from bench.schedule import Timed, scan_payload
from edge.lane.bus import MAX_BATCH
from lanehub.replication.sqlite import connect, transaction
from lanehub.runtime.mqtt import BrokerSettings, Incoming, MqttClient
from lanehub.runtime.worker import Worker

FLOOR_DB = "floor.db"


def _client(port: int, role: str) -> MqttClient:
    client = MqttClient(BrokerSettings(port=port), f"bench-{role}-{uuid.uuid4().hex[:6]}")
    client.start()
    if not client.wait_connected(10):
        raise RuntimeError(f"the {role} cannot reach the store broker")
    return client


class EchoResponder:
    """Answers every ask with its own payload, straight from the network thread."""

    def __init__(self, port: int):
        self.answer = topics.floor_answer(topics.ECHO)
        self.client = _client(port, "floor-echo")
        self.client.subscribe(topics.floor_ask(topics.ECHO), self._on_ask)

    def _on_ask(self, msg: Incoming) -> None:
        self.client.publish(self.answer, msg.payload)

    def stop(self) -> None:
        self.client.stop()


class DurableResponder:
    """Answers every ask once a row for it is committed with ``synchronous=FULL``."""

    def __init__(self, port: int, directory: Path):
        self.path = directory / FLOOR_DB
        self.answer = topics.floor_answer(topics.DURABLE)
        self.pending: collections.deque[Incoming] = collections.deque()  # filled by paho's thread, drained by the worker
        self.conn: sqlite3.Connection | None = None  # the worker's own, opened on it
        self.worker = Worker("bench-floor-durable", setup=self._open, teardown=self._close).start()
        self.worker.call(lambda: None)  # the table exists before the first ask
        self.client = _client(port, "floor-durable")
        self.client.subscribe(topics.floor_ask(topics.DURABLE), self._on_ask)

    def _open(self) -> None:
        self.conn = connect(self.path)
        # One small row per message: the least a durable record of it can be.
        self.conn.execute("CREATE TABLE IF NOT EXISTS echoes (id INTEGER PRIMARY KEY, payload BLOB NOT NULL, "
                          "at REAL NOT NULL)")

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _on_ask(self, msg: Incoming) -> None:
        self.pending.append(msg)
        self.worker.submit(self._drain)

    def _drain(self) -> None:
        assert self.conn is not None  # opened by the worker's setup
        batch: list[Incoming] = []
        while self.pending and len(batch) < MAX_BATCH:
            batch.append(self.pending.popleft())
        if not batch:  # an earlier drain took these
            return
        now = time.time()
        with transaction(self.conn):
            self.conn.executemany("INSERT INTO echoes (payload, at) VALUES (?, ?)", [(m.payload, now) for m in batch])
        for msg in batch:  # durable: now it may be answered
            self.client.publish(self.answer, msg.payload)

    def stop(self) -> None:
        self.client.stop()
        self.worker.stop()


class FloorProbe(Timed):
    """Sends scan payloads to one floor's responder and times each until its answer."""

    def __init__(self, port: int, kind: str, barcode: str):
        super().__init__()
        self.ask = topics.floor_ask(kind)
        self.barcode = barcode
        self.client = _client(port, f"floor-probe-{kind}")
        self.client.subscribe(topics.floor_answer(kind), self._on_answer)
        time.sleep(0.3)  # the SUBACK: answers to the first asks must not be missed

    def _on_answer(self, msg: Incoming) -> None:
        at = time.perf_counter()
        self.arrived(_scan_id(msg.payload), at)

    def send(self, n: int) -> None:
        key = str(uuid.uuid4())
        payload = scan_payload(key, self.barcode)
        self.sending(key)
        self.client.publish(self.ask, payload)

    def stop(self) -> None:
        self.client.stop()


def _scan_id(payload: bytes) -> str | None:
    return json.loads(payload).get("id")


class Floors:
    """Both floors on the store broker at ``port``; the durable one's file in ``directory``."""

    def __init__(self, port: int, directory: Path, barcode: str):
        self.echo_responder = EchoResponder(port)
        self.durable_responder = DurableResponder(port, directory)
        self.echo = FloorProbe(port, topics.ECHO, barcode)
        self.durable = FloorProbe(port, topics.DURABLE, barcode)

    def stop(self) -> None:
        for part in (self.echo, self.durable, self.echo_responder, self.durable_responder):
            part.stop()
