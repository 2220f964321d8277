"""The later acknowledged write of a field wins everywhere: an edit to the value a
site already shows is still a write, a store's clock follows HQ's stamps on every
worker, and a lane request is applied once and never after its deadline."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest
from helpers import customer_by, db_query, edge_db, hq_db, lane_request, replica_state, wait_converged, wait_until

from hq.db import HQDatabase
from lanehub.domain.codes import CodeFormat
from lanehub.protocol import topics
from lanehub.protocol.hlc import HybridLogicalClock
from lanehub.runtime.mqtt import RequestTimeout


def lane_client(chain, mqtt, store: str = "S001"):
    client = mqtt(chain.store_brokers[store].port)
    client.subscribe("test/#", lambda m: None)
    return client


def process_state(pid: int) -> str:
    """R, S, T (stopped)...: a signal is delivered asynchronously."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def assert_everywhere(chain, key: str, **expected) -> None:
    hq_state = wait_converged(chain, 40)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state, f"{store} differs from HQ"
    record = customer_by(hq_db(chain), "id", key)
    assert {name: record[name] for name in expected} == expected


def test_an_edit_to_the_value_already_shown_is_a_write_and_the_later_one_wins(chain, mqtt):
    lane = lane_client(chain, mqtt)
    made = lane_request(lane, "S001", "L1", {"op": "create", "id": str(uuid.uuid4()),
                                             "customer": {"first_name": "Ada", "last_name": "Later", "city": "Paris"}})
    assert made["ok"], made
    key = made["customer"]["id"]
    wait_converged(chain)

    chain.hq_broker.stop()
    chain.hq_cli("customers", "edit", key, "--city", "London")  # HQ, offline from the stores
    time.sleep(0.5)
    # S001 still shows Paris and the cashier confirms Paris, after HQ's edit: the later write.
    again = lane_request(lane, "S001", "L1", {"op": "update", "id": str(uuid.uuid4()), "ref": key,
                                              "customer": {"city": "Paris"}})
    assert again["ok"] and again["customer"]["city"] == "Paris", again
    chain.hq_broker.start()
    assert_everywhere(chain, key, city="Paris")


def test_a_lane_edit_after_an_hq_edit_from_a_clock_ahead_wins(chain, mqtt):
    lane = lane_client(chain, mqtt)
    made = lane_request(lane, "S001", "L1", {"op": "create", "id": str(uuid.uuid4()),
                                             "customer": {"first_name": "Grace", "last_name": "Ahead"}})
    assert made["ok"], made
    key = made["customer"]["id"]
    wait_converged(chain)

    # HQ's clock 2 minutes ahead of the store's (inside the 10-minute tolerance): an HQ
    # edit written by an HQ process with that clock; the HQ service publishes it.
    hq = HQDatabase(hq_db(chain), CodeFormat("CUST-", 5))
    try:
        hq.clock = HybridLogicalClock(wall_ms=lambda: int(time.time() * 1000) + 120_000,
                                      last=hq.clock.last)
        hq.update_customer(key, {"city": "London"}, "hq-ahead")
    finally:
        hq.close()
    wait_until(lambda: customer_by(edge_db(chain, "S001"), "id", key)["city"] == "London", 20,
               message="HQ's edit at S001")
    # The store has seen HQ's stamp: the cashier's later edit must sort after it.
    reply = lane_request(lane, "S001", "L1", {"op": "update", "id": str(uuid.uuid4()), "ref": key,
                                              "customer": {"city": "Paris"}})
    assert reply["ok"], reply
    assert_everywhere(chain, key, city="Paris")


def test_an_update_resent_with_the_same_id_is_applied_once(chain, mqtt):
    lane = lane_client(chain, mqtt)
    made = lane_request(lane, "S001", "L1", {"op": "create", "id": str(uuid.uuid4()),
                                             "customer": {"first_name": "Once", "last_name": "Only"}})
    key = made["customer"]["id"]
    update = {"op": "update", "id": str(uuid.uuid4()), "ref": key, "customer": {"city": "Rome"}}
    assert lane_request(lane, "S001", "L1", update)["ok"]
    wait_converged(chain)
    chain.hq_cli("customers", "edit", key, "--city", "Oslo")  # the later write
    wait_until(lambda: customer_by(edge_db(chain, "S001"), "id", key)["city"] == "Oslo", 20, message="HQ's edit at S001")
    again = lane_request(lane, "S001", "L1", update)  # a redelivery of the first update
    assert again["ok"] and again["customer"]["city"] == "Oslo", again
    assert_everywhere(chain, key, city="Oslo")


def test_a_lane_request_past_its_deadline_is_refused_not_applied(chain, mqtt):
    lane = lane_client(chain, mqtt)
    made = lane_request(lane, "S001", "L1", {"op": "create", "id": str(uuid.uuid4()),
                                             "customer": {"first_name": "Dead", "last_name": "Line", "city": "Lyon"}})
    key = made["customer"]["id"]
    late = lane_request(lane, "S001", "L1", {"op": "update", "id": str(uuid.uuid4()), "ref": key,
                                             "customer": {"city": "Nice"}, "deadline": time.time() - 1})
    assert not late["ok"] and "deadline" in late["error"], late
    create_id = str(uuid.uuid4())
    late_create = lane_request(lane, "S001", "L1", {"op": "create", "id": create_id, "deadline": time.time() - 1,
                                                    "customer": {"first_name": "Never", "last_name": "Made"}})
    assert not late_create["ok"] and "deadline" in late_create["error"], late_create
    for bad in ("soon", -5):
        reply = lane_request(lane, "S001", "L1", {"op": "update", "id": str(uuid.uuid4()), "ref": key,
                                                  "customer": {"city": "Nice"}, "deadline": bad})
        assert not reply["ok"] and "deadline" in reply["error"], reply

    # The realistic case: the edge is frozen, the lane gives up at its deadline, the
    # request waits in the edge's persistent store-broker session and arrives late.
    edge = chain.edges["S001"].process
    edge.send_signal(signal.SIGSTOP)
    wait_until(lambda: process_state(edge.pid) == "T", 5, 0.01, message="the edge to be stopped")
    try:
        payload = {"v": 1, "op": "update", "id": str(uuid.uuid4()), "ref": key, "customer": {"city": "Metz"},
                   "deadline": time.time() + 1}
        with pytest.raises(RequestTimeout):
            lane.request(topics.customer_req("S001", "L1"), json.dumps(payload).encode(), "test/S001/L1/reply/late", 1.5)
    finally:
        edge.send_signal(signal.SIGCONT)
    assert lane_request(lane, "S001", "L1", {"op": "search", "q": "Dead"})["ok"]  # the edge has caught up
    assert_everywhere(chain, key, city="Lyon")
    assert customer_by(edge_db(chain, "S001"), "first_name", "Never") is None


def test_an_extra_value_set_to_what_the_store_shows_is_a_write_and_the_later_one_wins(chain):
    chain.hq_cli("extra-fields", "add", "loyalty_tier", "Loyalty tier")
    ann = json.loads(chain.hq_cli("customers", "add", "--first-name", "Ann", "--last-name", "Tier",
                                  "--extra", "loyalty_tier=gold").stdout)
    wait_converged(chain)
    chain.hq_broker.stop()
    chain.hq_cli("customers", "edit", ann["code"], "--extra", "loyalty_tier=silver")  # HQ, offline from the stores
    time.sleep(0.5)
    # S001 still shows gold, and its admin confirms gold after HQ's edit: the later write.
    chain.edge_cli("S001", "customers", "edit", ann["code"], "--extra", "loyalty_tier=gold")
    chain.hq_broker.start()
    wait_converged(chain, 40)
    for path in (hq_db(chain), *(edge_db(chain, store) for store in chain.stores)):
        rows = db_query(path, "SELECT value FROM customer_extras WHERE customer_id = ? AND name = 'loyalty_tier'",
                        (ann["id"],))
        assert [r["value"] for r in rows] == ["gold"], path
