"""GET /healthz on the HQ Manager and the store page, against a real chain:
`lanehub hq run` and `lanehub edge run` processes, real brokers killed and
started again, real SQLite."""

from __future__ import annotations

import json
from datetime import datetime

from helpers import hq_head, wait_converged, wait_until
from test_broker_link import healthz

from edge.config import load_config as load_edge_config
from edge.db import EdgeDatabase
from edge.web.app import create_app as store_app
from hq.db import HQDatabase
from hq.web.app import create_app as hq_app
from lanehub.domain.codes import CodeFormat


def health(chain, site: str) -> tuple[int, dict]:
    return wait_until(lambda: healthz(chain.web_ports[site]), 20, message=f"{site}'s /healthz")


def answers(chain, site: str, status: int, check=lambda body: True, timeout: float = 20) -> dict:
    """Wait until ``site``'s /healthz answers ``status`` with a body ``check`` accepts."""
    def ok():
        code, body = health(chain, site)
        return body if code == status and check(body) else None

    return wait_until(ok, timeout, 0.2, f"{site}'s /healthz to answer {status} (last: {health(chain, site)})")


def test_healthz_follows_the_brokers_of_a_running_chain(make_chain):
    chain = make_chain(stores=("S001",))
    chain.hq_cli("customers", "add", "--first-name", "Hal", "--last-name", "Thy")
    wait_converged(chain)

    code, hq = health(chain, "hq")
    assert code == 200 and hq["status"] == "ok" and hq["problems"] == [], hq
    assert hq["service"] is True and hq["database"] == {"ok": True}
    assert hq["last_seq"] == hq_head(chain) > 0
    link = hq["broker_links"]["hq_broker"]
    assert link["connected"] is True and link["reason"] == "connected" and link["required"] is True
    assert datetime.fromisoformat(link["since"]).tzinfo is not None
    store = answers(chain, "S001", 200, lambda b: b["outbox"] == 0)
    assert store["status"] == "ok" and store["store"] == "S001", store
    assert store["last_seq"] == hq["last_seq"]
    assert store["database"] == {"ok": True, "ready": True}
    assert {name: (l["connected"], l["required"]) for name, l in store["broker_links"].items()} == {
        "store_broker": (True, True), "hq_broker": (True, False)}
    assert "password" not in json.dumps([hq, store]).lower()

    # HQ's broker goes: HQ is down (503), the store keeps selling (200, degraded).
    chain.hq_broker.kill()
    hq = answers(chain, "hq", 503, lambda b: "refused" in b["broker_links"]["hq_broker"]["reason"])
    assert hq["status"] == "down" and hq["broker_links"]["hq_broker"]["connected"] is False
    assert hq["problems"][0].startswith("hq_broker down since ")
    assert hq["broker_links"]["hq_broker"]["reason"].startswith("connection refused: nothing listens on that port")
    store = answers(chain, "S001", 200, lambda b: b["broker_links"]["hq_broker"]["connected"] is False)
    assert store["status"] == "degraded" and store["broker_links"]["store_broker"]["connected"] is True
    assert "(not required)" in store["problems"][0]
    # A change made at the store while HQ is away waits in the outbox, and /healthz counts it.
    chain.edge_cli("S001", "customers", "add", "--first-name", "Off", "--last-name", "Line")
    answers(chain, "S001", 200, lambda b: b["outbox"] == 1)

    port = chain.hq_broker.port
    log = chain.hq.tail(200)
    assert f"WARNING lanehub.runtime.mqtt: lanehub-hq: lost HQ broker 127.0.0.1:{port}: connection lost" in log, log
    assert f"WARNING lanehub.runtime.mqtt: lanehub-hq: cannot connect to HQ broker 127.0.0.1:{port}: connection refused" in log
    assert chain.edges["S001"].wait_for_log(
        f"WARNING lanehub.runtime.mqtt: lanehub-edge-S001: cannot connect to HQ broker 127.0.0.1:{port}: connection refused", 10)

    chain.hq_broker.start()
    hq = answers(chain, "hq", 200, lambda b: b["status"] == "ok", 30)
    store = answers(chain, "S001", 200, lambda b: b["status"] == "ok" and b["outbox"] == 0, 30)
    wait_converged(chain)
    assert store["broker_links"]["hq_broker"]["connected"] is True
    assert health(chain, "S001")[1]["last_seq"] == hq_head(chain) == health(chain, "hq")[1]["last_seq"]
    assert chain.hq.wait_for_log(f"lanehub-hq: connected to HQ broker 127.0.0.1:{port} after ", 5)

    # The store's own broker goes: the store page answers 503.
    chain.store_brokers["S001"].kill()
    store = answers(chain, "S001", 503, lambda b: b["broker_links"]["store_broker"]["connected"] is False)
    assert store["status"] == "down" and store["problems"][0].startswith("store_broker down since ")
    chain.store_brokers["S001"].start()
    answers(chain, "S001", 200, lambda b: b["status"] == "ok", 30)


def test_healthz_without_a_service_answers_for_the_database_and_calls_the_links_unknown(tmp_path):
    hq_db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    hq_db.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t")
    hq_db.close()
    hq = hq_app({"hq": {"db": str(tmp_path / "hq.db")}, "codes": {"prefix": "CUST-", "width": 5, "block_size": 100},
                 "web": {"secure_cookies": False}}).test_client()
    response = hq.get("/healthz")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "degraded" and body["service"] is False
    assert body["last_seq"] == 1 and body["database"] == {"ok": True}
    assert body["broker_links"]["hq_broker"] == {"connected": None, "since": None, "required": True,
                                                 "reason": "unknown: no service runs in this process"}
    assert "Set-Cookie" not in response.headers  # no session for a probe

    store_db = tmp_path / "S001.db"
    (tmp_path / "edge.toml").write_text(f'[store]\nid = "S001"\ndb = "{store_db}"\n')
    store = store_app(load_edge_config(tmp_path / "edge.toml"), open_db=lambda: EdgeDatabase(store_db, "S001")).test_client()
    body = store.get("/healthz").get_json()
    assert body["database"] == {"ok": True, "ready": False} and body["outbox"] == 0
    assert "the replica is not loaded yet (waiting for HQ's snapshot)" in body["problems"]
    assert set(body["broker_links"]) == {"store_broker", "hq_broker"}

    # A database that cannot be read: 503, and the reason.
    for path in tmp_path.glob("S001.db*"):
        path.unlink()
    store_db.write_bytes(b"this is not SQLite" * 500)
    response = store.get("/healthz")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "down"
    assert body["database"] == {"ok": False, "error": "DatabaseError: file is not a database"}
    assert body["last_seq"] is None and body["outbox"] is None
