"""Shared fixtures: real Mosquitto brokers, real lanehub processes, real SQLite.

- ``mosquitto``: a factory for brokers on free loopback ports with their own
  config, password file, ACL file and persistence directory; each can be
  stopped, SIGKILLed and restarted on the same port.
- ``chain``: HQ broker + store brokers + `lanehub hq run` + `lanehub edge run`
  processes with generated configs (``lanehub.chain.local.Chain``); parts can be
  SIGKILLed and restarted.
- ``mqtt``: a factory for connected ``lanehub.runtime.mqtt.MqttClient`` test clients.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

# `make test` runs the suite in parallel workers (pytest-xdist): each takes its own
# slice of the free ports (lanehub.protocol.acl.free_port), so two never pick the same one.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    os.environ["LANEHUB_PORT_SLICE"] = (f"{int(os.environ['PYTEST_XDIST_WORKER'][2:])}/"
                                        f"{os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')}")

from lanehub.chain.mosquitto import Mosquitto
from lanehub.chain.local import Chain
from lanehub.protocol.lane import CustomerReply
from lanehub.runtime.mqtt import BrokerSettings, MqttClient
from lanehub.protocol import topics


def wait_until(predicate, timeout: float = 20, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test with ``message`` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")


@pytest.fixture
def mosquitto(tmp_path):
    brokers: list[Mosquitto] = []

    def make(name: str = "broker", **kwargs) -> Mosquitto:
        broker = Mosquitto(tmp_path / name, **kwargs).start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mqtt():
    clients: list[MqttClient] = []

    def make(port: int, username: str = "", password: str = "", client_id: str | None = None) -> MqttClient:
        client = MqttClient(BrokerSettings(port=port, username=username, password=password),
                            client_id or f"test-{uuid.uuid4().hex[:8]}")
        client.start()
        assert client.wait_connected(10), f"test client could not connect to port {port}"
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


def _dump_failure_logs(chain: Chain) -> None:
    for proc in [chain.hq, *chain.edges.values()]:
        if proc is not None:
            print(f"----- {proc.name} log -----\n{proc.tail(60)}")


@pytest.fixture
def make_chain(tmp_path, request):
    chains: list[Chain] = []

    def make(stores=("S001", "S002"), start: bool = True, **kwargs) -> Chain:
        chain = Chain(tmp_path / f"chain{len(chains)}", tuple(stores), **kwargs)
        chains.append(chain)
        if start:
            start_chain(chain)
        return chain

    yield make
    failed = getattr(request.node, "rep_call", None)
    for chain in chains:
        if failed is not None and failed.failed:
            _dump_failure_logs(chain)
        kill_chain(chain)


def start_chain(chain: Chain) -> Chain:
    chain.start()
    for store in chain.stores:
        wait_until(lambda s=store: edge_ready(chain, s), 30, message=f"edge {store} snapshot")
    return chain


def kill_chain(chain: Chain) -> None:
    for proc in [*chain.edges.values(), chain.hq]:
        if proc is not None:
            proc.kill()
    for broker in [*chain.store_brokers.values(), chain.hq_broker]:
        broker.kill()


@pytest.fixture
def chain(make_chain):
    return make_chain()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


# --- reading replicas straight from their SQLite files ---------------------------------

def db_query(path: str | Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_value(path: str | Path, sql: str, args: tuple = ()):
    """The first column of the first row, or None while there is no row yet
    (for ``wait_until``: a record that has not arrived is not an error)."""
    rows = db_query(path, sql, args)
    return rows[0][0] if rows else None


def hq_db(chain: Chain) -> Path:
    return chain.workdir / "hq.db"


def edge_db(chain: Chain, store: str) -> Path:
    return chain.workdir / f"{store}.db"


def edge_ready(chain: Chain, store: str) -> bool:
    path = edge_db(chain, store)
    if not path.exists():
        return False
    try:
        rows = db_query(path, "SELECT value FROM meta WHERE key = 'snapshot_done'")
    except sqlite3.OperationalError:
        return False
    return bool(rows) and rows[0][0] == "1"


def customer_by(path: Path, column: str, value) -> dict | None:
    rows = db_query(path, f"SELECT * FROM customers WHERE {column} = ?", (value,))
    return dict(rows[0]) if rows else None


def replica_state(path: Path) -> dict:
    """Every replicated record with its fields and clocks: equal dicts mean identical replicas."""
    from lanehub.domain.model import ENTITIES

    state = {}
    for spec in ENTITIES.values():
        columns = ", ".join(["id", *(f"[{f}]" for f in spec.fields), "_clocks"])
        rows = db_query(path, f"SELECT {columns} FROM [{spec.table}] ORDER BY id")
        state[spec.name] = [tuple(row) for row in rows]
    return state


def last_seq(path: Path) -> int:
    rows = db_query(path, "SELECT value FROM meta WHERE key = 'last_seq'")
    return int(rows[0][0]) if rows else 0


def hq_head(chain: Chain) -> int:
    return db_query(hq_db(chain), "SELECT coalesce(max(seq), 0) FROM changes")[0][0]


def wait_converged(chain: Chain, timeout: float = 30) -> dict:
    """Wait until every edge has applied HQ's head and has an empty outbox; return HQ's state."""

    def converged():
        head = hq_head(chain)
        for store in chain.stores:
            path = edge_db(chain, store)
            if last_seq(path) != head:
                return False
            if db_query(path, "SELECT count(*) FROM outbox")[0][0]:
                return False
        return head == hq_head(chain)

    wait_until(converged, timeout, 0.2, "every edge to reach HQ's head with an empty outbox")
    return replica_state(hq_db(chain))


def lane_request(client: MqttClient, store: str, lane: str, payload: dict, timeout: float = 10) -> dict:
    """A lane's customer request over MQTT 5 request/response; returns the reply object."""
    reply = client.request(topics.customer_req(store, lane), json.dumps({"v": 1, **payload}).encode(),
                           f"test/{store}/{lane}/reply/{uuid.uuid4().hex[:8]}", timeout)
    data = json.loads(reply.payload)
    CustomerReply.from_dict(data)  # the reply itself is well-formed
    return data


@pytest.fixture
def lane(mqtt, chain):
    """A lane client on store S001's broker, subscribed to its reply topics."""
    client = mqtt(chain.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    return client
