"""Two stores offline edit the same customer and sign up the same person: after
reconnection every replica equals HQ, the merge follows the clocks, not the
arrival order, and the two new records are flagged as possible duplicates."""

from __future__ import annotations

import json
import time

import pytest
from helpers import customer_by, db_query, edge_db, hq_db, lane_request, replica_state, wait_converged, wait_until
from postgres import HQ_BACKENDS

# HQ on each backend of its storage (docs/decisions.md D50).
pytestmark = pytest.mark.parametrize("hq_backend", HQ_BACKENDS)


def test_offline_edits_merge_by_clock_and_duplicates_are_flagged(chain, mqtt):
    existing = json.loads(chain.hq_cli("customers", "add", "--first-name", "Alan", "--last-name", "Turing",
                                       "--email", "alan@old.example", "--city", "London").stdout)
    code = existing["code"]
    wait_converged(chain)
    lanes = {s: mqtt(chain.store_brokers[s].port) for s in chain.stores}
    for client in lanes.values():
        client.subscribe("test/#", lambda m: None)

    chain.hq_broker.stop()  # both stores lose HQ; lanes and store brokers keep working

    # t1: S001 edits three fields; t2: HQ edits one of them; t3: S002 edits two, one shared with S001.
    chain.edge_cli("S001", "customers", "edit", code, "--email", "s001@example.com", "--city", "Leeds",
                   "--contact", "ask for Alan")
    time.sleep(0.02)
    chain.hq_cli("customers", "edit", code, "--email", "hq@example.com")
    time.sleep(0.02)
    chain.edge_cli("S002", "customers", "edit", code, "--phone", "+34 699 000 111", "--city", "Bilbao")
    person = {"first_name": "Marie", "last_name": "Curie", "email": "marie@example.com"}
    made = {s: lane_request(lanes[s], s, "L1", {"op": "create", "customer": person}) for s in chain.stores}
    assert all(reply["ok"] for reply in made.values()), made
    assert made["S001"]["customer"]["code"] != made["S002"]["customer"]["code"]

    # Arrival order against the clocks: the newest edits (S002's) reach HQ first,
    # S001's older ones last, after HQ's own.
    chain.edges["S001"].stop()
    chain.hq_broker.start()
    wait_until(lambda: customer_by(hq_db(chain), "id", existing["id"])["city"] == "Bilbao", 30,
               message="S002's offline edit at HQ")
    assert customer_by(hq_db(chain), "id", existing["id"])["contact"] == ""  # S001 has not arrived yet
    chain.edges["S001"].start()

    hq_state = wait_converged(chain, 40)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state, f"{store} differs from HQ"
    merged = customer_by(hq_db(chain), "id", existing["id"])
    assert merged["email"] == "hq@example.com"  # HQ's t2 beats S001's older t1 that arrived later
    assert merged["city"] == "Bilbao"  # S002's t3 beats S001's t1
    assert merged["contact"] == "ask for Alan"  # nobody else touched it: S001's offline edit applies
    assert merged["phone"] == "+34 699 000 111"
    assert merged["origin_store"] == ""

    ids = sorted(reply["customer"]["id"] for reply in made.values())
    for store, reply in made.items():
        at_hq = customer_by(hq_db(chain), "id", reply["customer"]["id"])
        assert at_hq["code"] == reply["customer"]["code"] and at_hq["origin_store"] == store
    pairs = db_query(hq_db(chain), "SELECT a, b, reason FROM possible_duplicates WHERE status = 'open'")
    assert [(row["a"], row["b"]) for row in pairs] == [tuple(ids)]
    assert "same name and e-mail" in pairs[0]["reason"]
