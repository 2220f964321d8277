"""Malformed payloads on every topic a service subscribes to go to the error topic
with a reason, and no loop dies: the services keep working afterwards."""

from __future__ import annotations

import json

from core import topics

from conftest import customer_by, edge_db, lane_request, wait_until

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
    hq_user = mqtt(chain.hq_broker.port, "hq", chain.hq_password)
    s001 = mqtt(chain.hq_broker.port, "S001", chain.store_passwords["S001"])
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
    s001 = mqtt(chain.hq_broker.port, "S001", chain.store_passwords["S001"])
    hq_user = mqtt(chain.hq_broker.port, "hq", chain.hq_password)
    hq_errors: list[dict] = []
    foreign: list[bytes] = []
    hq_user.subscribe(topics.error("hq"), lambda m: hq_errors.append(json.loads(m.payload)))
    # Only the aimed-at topic: S002's own edge gets genuine replies under its prefix meanwhile.
    hq_user.subscribe(topics.sync_reply("S002", "stolen"), lambda m: foreign.append(m.payload))
    s001.publish(topics.sync_req("S001"), json.dumps({"v": 1, "op": "snapshot", "entity": "customer"}).encode(),
                 response_topic=topics.sync_reply("S002", "stolen"), correlation=b"x")
    report = wait_until(lambda: [e for e in hq_errors if "response topic" in e["reason"]], 10, message="HQ's report")
    assert topics.sync_store("S001") in report[0]["reason"]
    assert foreign == []
