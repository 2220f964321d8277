"""An invalid change from a store is refused with a reason, and the valid changes
behind it still apply (through the real edge, and on the wire)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from helpers import customer_by, db_query, edge_db, hq_db, replica_state, wait_converged, wait_until
from postgres import HQ_BACKENDS

from edge.db import EdgeDatabase
from lanehub.protocol import topics
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp
from lanehub.replication.sqlite import transaction

# HQ on each backend of its storage (docs/decisions.md D50).
pytestmark = pytest.mark.parametrize("hq_backend", HQ_BACKENDS)


def test_a_refused_change_does_not_block_the_ones_behind_it(chain):
    # A change HQ must refuse (a code never leased to S001), queued like any local write.
    db = EdgeDatabase(edge_db(chain, "S001"), "S001")
    bad_key = str(uuid.uuid4())
    with transaction(db.conn):
        db.write("customer", bad_key, {"code": "CUST-09999", "first_name": "Not", "last_name": "Leased",
                                        "origin_store": "S001", "active": True}, "test")
    db.close()
    good = [json.loads(chain.edge_cli("S001", "customers", "add", "--first-name", f"Good{i}", "--last-name", "Behind").stdout)
            for i in range(3)]

    for customer in good:
        for path in (hq_db(chain), edge_db(chain, "S002")):
            wait_until(lambda p=path, c=customer: customer_by(p, "id", c["id"]), 20, message=f"{customer['code']} in {path}")
    hq_refusals = wait_until(lambda: db_query(hq_db(chain), "SELECT * FROM rejections"), 10, message="HQ's rejection")
    assert hq_refusals[0]["store"] == "S001" and "CUST-09999 was not leased to S001" in hq_refusals[0]["reason"]
    edge_refusals = wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT * FROM rejections"), 10, message="the edge's rejection")
    assert edge_refusals[0]["reason"] == hq_refusals[0]["reason"]
    assert json.loads(edge_refusals[0]["change"])["fields"]["last_name"] == "Leased"  # what was typed is kept
    hq_state = wait_converged(chain)
    assert customer_by(edge_db(chain, "S001"), "id", bad_key) is None  # never accepted: gone from the replica
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state
    assert "CUST-09999" in chain.edge_cli("S001", "rejections").stdout
    assert "was not leased" in chain.hq_cli("rejections").stdout


def test_the_ack_lists_accepted_and_refused_changes_with_reasons(chain, mqtt):
    existing = json.loads(chain.hq_cli("customers", "add", "--first-name", "Wire", "--last-name", "Test").stdout)
    wait_converged(chain)
    chain.edges["S001"].stop()  # this test speaks as S001 (a client id is its user name on the HQ broker)
    s001 = mqtt(chain.hq_broker.port, "S001", chain.store_passwords["S001"])
    acks: list[dict] = []
    s001.subscribe(topics.sync_store("S001"), lambda m: acks.append(json.loads(m.payload)))
    time.sleep(0.3)
    stamp = format_stamp(int(time.time() * 1000), 0)
    wrong_origin = Change(str(uuid.uuid4()), "customer", existing["id"], "S002", stamp, "t", {"city": "X"})
    invalid = Change(str(uuid.uuid4()), "customer", existing["id"], "S001", stamp, "t", {"email": "not-an-email"})
    valid = Change(str(uuid.uuid4()), "customer", existing["id"], "S001", stamp, "t", {"city": "Valencia"})
    batch = {"v": 1, "store": "S001", "changes": [wrong_origin.to_dict(), invalid.to_dict(), {"id": "junk"}, valid.to_dict()]}
    assert s001.publish_acked(topics.sync_up("S001"), json.dumps(batch).encode()).ok
    ack = wait_until(lambda: [a for a in acks if a.get("type") == "ack" and valid.id in a["acked"]], 10, message="the ack")[0]
    reasons = {r["id"]: r["reason"] for r in ack["rejected"]}
    assert "does not match the store" in reasons[wrong_origin.id]
    assert "email is not a valid e-mail address" in reasons[invalid.id]
    assert "malformed change" in reasons["junk"]
    assert ack["acked"] == [valid.id]
    refused = next(r for r in ack["rejected"] if r["id"] == invalid.id)
    assert refused["record"]["id"] == existing["id"] and refused["clocks"]  # HQ's version, to repair the store
    for path in (hq_db(chain), edge_db(chain, "S002")):
        wait_until(lambda p=path: customer_by(p, "id", existing["id"])["city"] == "Valencia", 10, message=f"the valid edit in {path}")
    assert customer_by(hq_db(chain), "id", existing["id"])["email"] == ""
