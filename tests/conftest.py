"""Shared fixtures: real Mosquitto brokers, real lanehub processes, real SQLite.

- ``mosquitto``: a factory for brokers on free loopback ports with their own
  config, password file, ACL file and persistence directory; each can be
  stopped, SIGKILLed and restarted on the same port.
- ``chain``: HQ broker + store brokers + `lanehub hq run` + `lanehub edge run`
  processes with generated configs (``lanehub.chain.local.Chain``); parts can be
  SIGKILLed and restarted.
- ``mqtt``: a factory for connected ``lanehub.runtime.mqtt.MqttClient`` test clients.
- ``s001_client``: a test client on store S001's broker for ``helpers.lane_request``.

More fixtures come from the modules in ``pytest_plugins``: ``shop`` (``shop``, a
chain with a catalogue for the whole module, and ``lane``, a ``shop.Lane`` POS)
, ``web_sites`` (``sites``, both Flask apps without brokers) and ``postgres``
(``postgres``, a database of this test run's own on a real PostgreSQL). Plain helpers
the tests import are in helpers.py.
"""

from __future__ import annotations

import os
import uuid

import pytest

# `make test` runs the suite in parallel workers (pytest-xdist): each takes its own
# slice of the free ports (lanehub.protocol.acl.free_port), so two never pick the same one.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    os.environ["LANEHUB_PORT_SLICE"] = (f"{int(os.environ['PYTEST_XDIST_WORKER'][2:])}/"
                                        f"{os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')}")

from helpers import kill_chain, start_chain
from in_process_cli import run_in_process

from lanehub.chain.local import Chain
from lanehub.chain.mosquitto import Mosquitto
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

# Fixture modules: their fixtures are found by name in every test module, like these.
pytest_plugins = ["postgres", "shop", "web_sites"]  # postgres first: web_sites imports it

# Where chains keep HQ's database unless a test says: "sqlite" (the default) or "postgresql".
HQ_BACKEND = os.environ.get("LANEHUB_TEST_HQ_BACKEND", "sqlite")


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
def hq_backend() -> str:
    """Where chains keep HQ's database: a module runs on both with
    ``pytestmark = pytest.mark.parametrize("hq_backend", HQ_BACKENDS)``."""
    return HQ_BACKEND


@pytest.fixture
def make_chain(tmp_path, request, hq_backend):
    chains: list[Chain] = []

    def make(stores=("S001", "S002"), start: bool = True, hq_backend: str = hq_backend, **kwargs) -> Chain:
        """``hq_backend``: "sqlite", or "postgresql" for HQ's database in a schema of its own
        on the test server (LANEHUB_TEST_HQ_BACKEND=postgresql runs every chain so)."""
        cli = {"cli": run_in_process} if getattr(request.module, "CHAIN_CLI_IN_PROCESS", True) else {}
        if hq_backend == "postgresql" and "hq_db" not in kwargs:
            from postgres import new_hq_schema  # a plugin module (pytest_plugins): imported once it is one

            kwargs["hq_db"] = new_hq_schema(request.getfixturevalue("postgres"))  # dropped with the test database
        chain = Chain(tmp_path / f"chain{len(chains)}", tuple(stores), **cli | kwargs)
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


@pytest.fixture
def chain(make_chain):
    return make_chain()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


# Named for its broker, not "lane": ``lane`` is the shop's lane POS (shop.py).
@pytest.fixture
def s001_client(mqtt, chain):
    """A lane client on store S001's broker, subscribed to its reply topics."""
    client = mqtt(chain.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    return client
