"""Malformed payloads on every topic a service subscribes to go to the error topic
with a reason, and no loop dies: the services keep working afterwards."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest
from broker_users import hq_operator, store_twin  # HQ and S001 stay connected beside them
from helpers import customer_by, db_query, edge_db, lane_request, last_seq, wait_until
from shop import PRODUCTS_CSV, Lane, announce_printer

from lanehub.protocol import topics
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp

KiB, MiB = 1024, 1024 * 1024

BAD_PAYLOADS = [
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"this is not json", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (b'{"v": 2, "op": "search", "q": "x"}', "unsupported payload version"),
    (b'{"v": 1}', "missing field"),
    (b'{"v": 1, "op": 5, "store": 7, "type": 9, "state": 1, "changes": "x", "head": "x"}', "wrong type"),
]


def test_every_subscribed_topic_reports_bad_payloads_and_keeps_working(chain, mqtt):
    store_side = mqtt(chain.store_brokers["S001"].port)
    hq_user = hq_operator(chain, mqtt)
    s001 = store_twin(chain, mqtt, "S001")
    store_errors: list[dict] = []
    hq_errors: list[dict] = []
    store_side.subscribe(topics.error("S001"), lambda m: store_errors.append(json.loads(m.payload)))
    store_side.subscribe("test/#", lambda m: None)
    hq_user.subscribe(topics.error("hq"), lambda m: hq_errors.append(json.loads(m.payload)))

    # (topic, who publishes, where the report shows up)
    cases = [
        (topics.customer_req("S001", "L1"), store_side, store_errors),  # the edge's lane loop
        (topics.sync_down(), hq_user, store_errors),  # the edge's downstream loop
        (topics.sync_store("S001"), hq_user, store_errors),  # the edge's ack loop
        (topics.sync_up("S001"), s001, hq_errors),  # HQ's apply loop
        (topics.sync_req("S001"), s001, hq_errors),  # HQ's request loop
        (topics.sync_status("S001"), s001, hq_errors),  # HQ's status loop
    ]
    for topic, client, errors in cases:
        for payload, what in BAD_PAYLOADS:
            before = len([e for e in errors if e["topic"] == topic])
            client.publish(topic, payload)
            reports = wait_until(lambda: [e for e in errors if e["topic"] == topic][before:], 10,
                                 message=f"an error report for {what} on {topic}")
            assert reports[0]["reason"], reports
            assert reports[0]["v"] == 1 and isinstance(reports[0]["payload_excerpt"], str)

    # HQ also tells the store about bad payloads the store sent; the edge passes it on.
    wait_until(lambda: any(e["topic"] == topics.sync_up("S001") for e in store_errors), 10,
               message="HQ's report about S001's bad batch at the store")

    # Every loop is still alive.
    reply = lane_request(store_side, "S001", "L1", {"op": "create", "customer": {"first_name": "Still", "last_name": "Alive"}})
    assert reply["ok"], reply
    created = json.loads(chain.hq_cli("customers", "add", "--first-name", "After", "--last-name", "Garbage").stdout)
    for store in chain.stores:
        wait_until(lambda s=store: customer_by(edge_db(chain, s), "id", created["id"]), 20, message=f"HQ's customer at {store}")
    wait_until(lambda: customer_by(edge_db(chain, "S002"), "id", reply["customer"]["id"]), 20, message="S001's customer at S002")


def test_hq_never_replies_onto_another_stores_topics(chain, mqtt):
    s001 = store_twin(chain, mqtt, "S001")
    hq_user = hq_operator(chain, mqtt)
    hq_errors: list[dict] = []
    foreign: list[bytes] = []
    hq_user.subscribe(topics.error("hq"), lambda m: hq_errors.append(json.loads(m.payload)))
    # Only the aimed-at topic: S002's own edge gets genuine replies under its prefix meanwhile.
    hq_user.subscribe(topics.sync_reply("S002", "stolen"), lambda m: foreign.append(m.payload))
    time.sleep(0.3)  # subscribing does not wait for the broker's SUBACK: be subscribed before HQ reports
    s001.publish(topics.sync_req("S001"), json.dumps({"v": 1, "op": "snapshot", "entity": "customer"}).encode(),
                 response_topic=topics.sync_reply("S002", "stolen"), correlation=b"x")
    report = wait_until(lambda: [e for e in hq_errors if "response topic" in e["reason"]], 10, message="HQ's report")
    assert topics.sync_store("S001") in report[0]["reason"]
    assert foreign == []


# --- payloads that cannot be decoded: each refused alone, with a plain reason ----------

UNDECODABLE = {
    "deep nesting": (b'{"v":1,"id":"x","code":' + b"[" * 1_000 + b"]" * 1_000 + b"}", "nested deeper than 32 levels"),
    "a 5,000-digit integer": (b'{"v":1,"id":"x","code":"1","ts":' + b"7" * 5_000 + b"}", "more than 19 digits"),
    "a lone surrogate": (b'{"v":1,"id":"x","code":"84100\\ud800"}', "unpaired surrogate (\\ud800) at code"),
}


@pytest.fixture
def selling_chain(make_chain):
    """One store with the shop's catalogue and a printer that has reported."""
    chain = make_chain(stores=("S001",), store_settings={"S001": {"printer": "printer"}})
    csv = chain.workdir / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))
    announce_printer(chain.store_brokers["S001"].port, "S001", "printer")
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT count(*) FROM products")[0][0] == 3, 20,
               message="the catalogue at the store")
    return chain


def test_an_undecodable_event_is_reported_and_loses_no_scan_around_it(selling_chain, mqtt):
    client = mqtt(selling_chain.store_brokers["S001"].port)
    for n, (what, (payload, expected)) in enumerate(UNDECODABLE.items()):
        lane = Lane(client, "S001", f"L{n + 1}")
        scan_topic = topics.scan("S001", lane.lane)
        # Sent without waiting: the lane worker takes them in batches, the bad one in the middle of one.
        for i in range(60):
            if i == 40:
                lane.raw(scan_topic, payload)
            lane._send(scan_topic, {"code": "8410000000011" if i % 2 else "2000000000015", "device": "SC1"})
        state = lane.scan("8410000000011")  # the worker has handled everything sent before it
        assert len(state["lines"]) == 61, f"{what}: {61 - len(state['lines'])} scans lost"
        assert Decimal(state["total"]) == 31 * Decimal("1.20") + 30 * Decimal("0.95")
        reports = []
        while not lane.errors.empty():
            reports.append(lane.errors.get_nowait())
        about_scans = [r["reason"] for r in reports if r["topic"] == scan_topic]
        assert len(about_scans) == 1 and expected in about_scans[0], (what, about_scans)
        assert not about_scans[0].startswith("internal error"), about_scans


def test_undecodable_requests_are_answered_with_the_reason(chain, mqtt):
    store_side = mqtt(chain.store_brokers["S001"].port)
    store_side.subscribe("test/#", lambda m: None)
    s001 = store_twin(chain, mqtt, "S001")
    s001.subscribe(f"{topics.sync_store('S001')}/#", lambda m: None)
    deep = b'{"v":1,"op":"search","q":' + b"[" * 1_000 + b"]" * 1_000 + b"}"
    reply = store_side.request(topics.customer_req("S001", "L1"), deep, "test/S001/L1/reply/deep", 10)
    answer = json.loads(reply.payload)
    assert answer["ok"] is False and "nested deeper than 32 levels" in answer["error"]
    reply = s001.request(topics.sync_req("S001"), deep.replace(b"search", b"hello"), topics.sync_reply("S001", "deep"), 10)
    answer = json.loads(reply.payload)
    assert answer["ok"] is False and "nested deeper than 32 levels" in answer["error"]
    huge = b'{"v":1,"op":"search","q":"x","limit":' + b"1" * 5_000 + b"}"
    answer = json.loads(store_side.request(topics.customer_req("S001", "L1"), huge, "test/S001/L1/reply/int", 10).payload)
    assert answer["ok"] is False and "more than 19 digits" in answer["error"]


def test_hq_refuses_an_oversized_up_batch_and_says_the_limit(chain, mqtt):
    s001 = store_twin(chain, mqtt, "S001")
    messages: list[dict] = []
    s001.subscribe(topics.sync_store("S001"), lambda m: messages.append(json.loads(m.payload)))
    time.sleep(0.3)
    many = [{"id": str(uuid.uuid4())} for _ in range(1_001)]
    assert s001.publish_acked(topics.sync_up("S001"), json.dumps({"v": 1, "store": "S001", "changes": many}).encode()).ok
    error = wait_until(lambda: [m for m in messages if m["type"] == "error"], 10, message="HQ's refusal")[0]
    assert error["error"]["reason"] == "up batch: 1,001 changes, over the limit of 1,000 per batch"
    big = json.dumps({"v": 1, "store": "S001", "changes": [], "pad": "x" * (17 * MiB)}).encode()
    assert s001.publish_acked(topics.sync_up("S001"), big, timeout=30).ok  # the HQ broker takes it; HQ refuses it
    error = wait_until(lambda: [m for m in messages if m["type"] == "error"][1:], 20, message="HQ's refusal")[0]
    assert "over the limit of 16,777,216 bytes (16 MiB)" in error["error"]["reason"]
    assert not [m for m in messages if m["type"] == "ack"]


def test_the_rejections_of_one_up_batch_are_one_error_report_at_the_store(chain, mqtt):
    existing = json.loads(chain.hq_cli("customers", "add", "--first-name", "Wire", "--last-name", "Test").stdout)
    s001 = store_twin(chain, mqtt, "S001")
    store_side = mqtt(chain.store_brokers["S001"].port)
    reports: list[dict] = []
    store_side.subscribe(topics.error("S001"), lambda m: reports.append(json.loads(m.payload)))
    time.sleep(0.3)
    stamp = format_stamp(int(time.time() * 1000), 0)
    bad = [Change(str(uuid.uuid4()), "customer", existing["id"], "S001", stamp, "t", {"email": f"not-an-email-{i}"})
           for i in range(3)]
    batch = {"v": 1, "store": "S001", "changes": [c.to_dict() for c in bad]}
    assert s001.publish_acked(topics.sync_up("S001"), json.dumps(batch).encode()).ok
    wait_until(lambda: [r for r in reports if "HQ rejected" in r["reason"]], 10, message="the store's report")
    time.sleep(1.0)  # any further reports about the same batch would be here by now
    rejected = [r for r in reports if "HQ rejected" in r["reason"]]
    assert len(rejected) == 1, rejected
    assert rejected[0]["topic"] == topics.sync_up("S001") and rejected[0]["reason"].startswith("HQ rejected 3 changes:")
    assert all(c.id in rejected[0]["reason"] for c in bad) and "email is not a valid e-mail address" in rejected[0]["reason"]


def test_the_brokers_lanehub_runs_refuse_oversized_messages(chain, mqtt):
    store_side = mqtt(chain.store_brokers["S001"].port)
    seen: list[int] = []
    store_side.subscribe("test/size", lambda m: seen.append(len(m.payload)))
    time.sleep(0.3)
    assert store_side.publish_acked("test/size", b"x" * (4 * MiB - 64 * KiB)).ok
    refused = store_side.publish_acked("test/size", b"x" * (4 * MiB + 1))
    assert not refused.ok and "connection was lost" in refused.reason, refused  # dropped by the broker
    wait_until(lambda: seen, 10, message="the message within the limit")
    time.sleep(0.3)
    assert seen == [4 * MiB - 64 * KiB]
    s001 = store_twin(chain, mqtt, "S001")
    refused = s001.publish_acked(topics.sync_status("S001"), b"x" * (32 * MiB + 1), timeout=30)
    assert not refused.ok and "connection was lost" in refused.reason, refused


def test_the_ansible_broker_configs_have_the_same_limits():
    from pathlib import Path

    import jinja2

    from lanehub.protocol.acl import HQ_BROKER_MESSAGE_LIMIT, STORE_BROKER_MESSAGE_LIMIT, max_packet_size

    template = (Path(__file__).parent.parent / "ansible/roles/mosquitto/templates/mosquitto.conf.j2").read_text()
    for variant, limit in (("store", STORE_BROKER_MESSAGE_LIMIT), ("hq", HQ_BROKER_MESSAGE_LIMIT)):
        text = jinja2.Environment().from_string(template).render(mosquitto_variant=variant)
        lines = text.splitlines()
        assert f"message_size_limit {limit}" in lines and f"max_packet_size {max_packet_size(limit)}" in lines, text
    assert STORE_BROKER_MESSAGE_LIMIT >= 256 * KiB and HQ_BROKER_MESSAGE_LIMIT > 16 * MiB  # above what the services decode


def test_a_down_batch_the_replica_cannot_take_is_reported_and_the_next_one_applies(chain, mqtt):
    hq_user = hq_operator(chain, mqtt)
    store_side = mqtt(chain.store_brokers["S001"].port)
    reports: list[dict] = []
    store_side.subscribe(topics.error("S001"), lambda m: reports.append(json.loads(m.payload)))
    time.sleep(0.3)
    seq = last_seq(edge_db(chain, "S001")) + 1
    # Well-formed, but a name that is a list: SQLite cannot store it (a bug at HQ would send such a thing).
    change = Change(str(uuid.uuid4()), "customer", str(uuid.uuid4()), "hq", format_stamp(int(time.time() * 1000), 0), "t",
                    {"first_name": ["not", "text"], "last_name": "Odd"}, seq)
    hq_user.publish(topics.sync_down(), json.dumps({"v": 1, "type": "changes", "head": seq, "changes": [change.to_dict()]}).encode())
    report = wait_until(lambda: [r for r in reports if r["topic"] == topics.sync_down()], 10, message="the edge's report")[0]
    assert report["reason"].startswith("internal error: ") and "list" in report["reason"], report
    assert last_seq(edge_db(chain, "S001")) == seq - 1  # nothing of it was applied
    created = json.loads(chain.hq_cli("customers", "add", "--first-name", "Next", "--last-name", "Batch").stdout)
    wait_until(lambda: customer_by(edge_db(chain, "S001"), "id", created["id"]), 20, message="HQ's next change at the store")
