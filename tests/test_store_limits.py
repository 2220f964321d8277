"""What a store may not do at HQ, even with valid credentials: set an immutable
field (empty ones too), hold more code blocks than the cap, stamp its changes
or statuses with times that are not numbers or not near now."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from helpers import customer_by, db_query, edge_db, hq_db, lane_request, replica_state, wait_converged, wait_until

from edge.db import EdgeDatabase
from hq.db import HQDatabase
from lanehub.domain.codes import CodeFormat
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp
from lanehub.replication.sqlite import transaction


def queue_at_store(chain, store: str, entity: str, key: str, fields: dict) -> None:
    """A change queued in the store's outbox like any local write; the real edge sends it."""
    db = EdgeDatabase(edge_db(chain, store), store)
    try:
        with transaction(db.conn):
            db.write(entity, key, fields, "test")
    finally:
        db.close()


def test_a_store_cannot_set_an_empty_immutable_field_of_an_hq_customer(chain):
    made = json.loads(chain.hq_cli("customers", "add", "--first-name", "Hq", "--last-name", "Made").stdout)
    assert made["origin_store"] == ""  # HQ's own customers belong to no store
    wait_converged(chain)
    queue_at_store(chain, "S001", "customer", made["id"], {"origin_store": "S001"})
    refusal = wait_until(lambda: db_query(hq_db(chain), "SELECT reason FROM rejections WHERE key = ?", (made["id"],)), 20,
                         message="HQ's refusal of the origin_store edit")
    assert "origin_store cannot be changed" in refusal[0]["reason"], refusal[0]["reason"]
    hq_state = wait_converged(chain)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state
        assert customer_by(edge_db(chain, store), "id", made["id"])["origin_store"] == ""


def test_outstanding_code_blocks_are_capped_per_store(hq_target, tmp_path):
    db = HQDatabase(hq_target, CodeFormat("CUST-", 5), block_size=10)
    try:
        db.add_store("S001")
        db.add_store("S002")
        leases = [str(uuid.uuid4()) for _ in range(3)]
        blocks = [db.lease_block("S001", lease, max_outstanding=3) for lease in leases]
        with pytest.raises(PermissionError, match="3 code blocks not used up"):
            db.lease_block("S001", str(uuid.uuid4()), max_outstanding=3)
        assert db.lease_block("S001", leases[1], max_outstanding=3) == blocks[1]  # a retry is no new block
        assert db.lease_block("S002", str(uuid.uuid4()), max_outstanding=3)  # the cap is per store
        # A block whose last number reached HQ is used up: the store may lease again.
        last_code = db.codes.format(blocks[0]["end"])
        stamp = format_stamp(int(time.time() * 1000), 0)
        outcome = db.apply_store_changes("S001", [Change(str(uuid.uuid4()), "customer", str(uuid.uuid4()), "S001", stamp, "t", {
            "code": last_code, "first_name": "Last", "last_name": "Number", "origin_store": "S001"}).to_dict()])
        assert outcome[0].ok, outcome[0].reason
        assert db.lease_block("S001", str(uuid.uuid4()), max_outstanding=3)
    finally:
        db.close()


def test_an_edge_asking_past_the_cap_is_refused_with_the_reason_and_goes_provisional(make_chain, mqtt):
    chain = make_chain(block_size=1, code_low_water=10, hq_settings={
        "codes": {"prefix": "CUST-", "width": 5, "block_size": 1, "max_outstanding_blocks": 3}})
    time.sleep(4)  # the edge wants 10 numbers and asks on every tick
    held = db_query(hq_db(chain), "SELECT count(*) FROM code_blocks WHERE store = 'S001'")[0][0]
    assert held == 3, held
    assert chain.edges["S001"].wait_for_log("at most 3 code blocks", 10), chain.edges["S001"].tail()
    lane = mqtt(chain.store_brokers["S001"].port)
    lane.subscribe("test/#", lambda m: None)
    codes = [lane_request(lane, "S001", "L1", {"op": "create", "customer": {"first_name": f"Cap{i}", "last_name": "Ped"}})
             ["customer"]["code"] for i in range(5)]
    assert any("-P" in code for code in codes), codes  # out of numbers: provisional, at once
    hq_state = wait_converged(chain, 40)
    assert replica_state(edge_db(chain, "S001")) == hq_state


@pytest.mark.parametrize("stamp, reason", [
    ("NaN", "not an HLC stamp"), ("Infinity", "not an HLC stamp"), ("-000000000001-000000", "not an HLC stamp"),
    ("9999999999999-999999", "ahead of HQ"), ("11 minutes ahead", "ahead of HQ"),
], ids=["nan", "infinity", "negative", "year-2286", "11-minutes-ahead"])  # stable ids: parallel workers collect alike
def test_a_change_stamped_with_no_time_or_a_time_far_ahead_is_refused(hq_target, tmp_path, stamp, reason):
    if stamp == "11 minutes ahead":  # made when the test runs: collection may be minutes earlier
        stamp = format_stamp(int(time.time() * 1000) + 11 * 60 * 1000, 0)
    db = HQDatabase(hq_target, CodeFormat("CUST-", 5))
    try:
        db.add_store("S001")
        lease = db.lease_block("S001", str(uuid.uuid4()))
        change = {"id": str(uuid.uuid4()), "entity": "customer", "key": str(uuid.uuid4()), "origin": "S001", "hlc": stamp,
                  "by": "t", "fields": {"code": db.codes.format(lease["start"]), "first_name": "Bad", "last_name": "Clock",
                                        "origin_store": "S001"}}
        outcome = db.apply_store_changes("S001", [change])[0]
        assert not outcome.ok and reason in outcome.reason, outcome
        assert db.head() == 0
    finally:
        db.close()


@pytest.mark.parametrize("ts", [float("inf"), float("nan"), 1e308, time.time() + 86400],
                         ids=["inf", "nan", "1e308", "a-day-ahead"])
def test_a_status_stamped_with_no_time_or_a_time_far_ahead_counts_as_now(hq_target, tmp_path, ts):
    db = HQDatabase(hq_target, CodeFormat("CUST-", 5))
    try:
        db.add_store("S001")
        db.record_status("S001", "online", 3, 7, ts)
        row = db.stores()[0]
        assert row["link_state"] == "online" and (row["pending_up"], row["last_seq"]) == (3, 7)
        assert abs(row["last_contact"] - time.time()) < 60, row["last_contact"]
        db.record_status("S001", "online", 0, 8, time.time())  # a sane status later still moves it
        assert db.stores()[0]["last_seq"] == 8
    finally:
        db.close()
