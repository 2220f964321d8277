"""Customers created and edited anywhere reach HQ and every store (real brokers, real processes)."""

from __future__ import annotations

import json

import pytest
from helpers import customer_by, db_query, edge_db, hq_db, lane_request, replica_state, wait_converged, wait_until
from postgres import HQ_BACKENDS

# HQ on each backend of its storage (docs/decisions.md D50).
pytestmark = pytest.mark.parametrize("hq_backend", HQ_BACKENDS)


def test_customer_created_at_hq_reaches_both_stores(chain):
    out = chain.hq_cli("customers", "add", "--first-name", "Ada", "--last-name", "Lovelace",
                       "--email", "ada@example.com", "--phone", "+34 600 111 222").stdout
    created = json.loads(out)
    assert created["code"] == "CUST-00001" or created["code"].startswith("CUST-")
    for store in chain.stores:
        record = wait_until(lambda s=store: customer_by(edge_db(chain, s), "id", created["id"]), 15,
                            message=f"customer at {store}")
        assert record["code"] == created["code"]
        assert record["last_name"] == "Lovelace"
        assert record["origin_store"] == ""


def test_customer_created_at_a_store_reaches_hq_and_the_other_store_with_its_leased_code(chain, s001_client):
    reply = lane_request(s001_client, "S001", "L1", {"op": "create", "id": "req-1",
                                                     "customer": {"first_name": "Grace", "last_name": "Hopper"}})
    assert reply["ok"], reply
    customer = reply["customer"]
    number = int(customer["code"].removeprefix("CUST-"))
    blocks = [tuple(r) for r in db_query(hq_db(chain), "SELECT start, [end] FROM code_blocks WHERE store = 'S001'")]
    assert any(start <= number <= end for start, end in blocks), (customer["code"], blocks)
    assert customer["origin_store"] == "S001"
    for path in (hq_db(chain), edge_db(chain, "S002")):
        record = wait_until(lambda p=path: customer_by(p, "id", customer["id"]), 15, message=f"customer in {path}")
        assert record["code"] == customer["code"]
        assert record["origin_store"] == "S001"
    state = wait_converged(chain)
    assert any(row[0] == customer["id"] for row in state["customer"])


def test_edits_and_deactivation_propagate_from_hq_and_from_stores(chain):
    created = json.loads(chain.hq_cli("customers", "add", "--first-name", "Alan", "--last-name", "Turing").stdout)
    code = created["code"]
    wait_until(lambda: customer_by(edge_db(chain, "S002"), "id", created["id"]), 15, message="customer at S002")

    chain.hq_cli("customers", "edit", code, "--email", "alan@example.com")
    chain.edge_cli("S002", "customers", "edit", code, "--city", "Manchester")
    chain.hq_cli("customers", "deactivate", code)
    for path in (hq_db(chain), edge_db(chain, "S001"), edge_db(chain, "S002")):
        wait_until(lambda p=path: (r := customer_by(p, "id", created["id"])) and r["email"] == "alan@example.com"
                   and r["city"] == "Manchester" and r["active"] == 0, 15, message=f"edits in {path}")

    chain.edge_cli("S001", "customers", "reactivate", code)
    for path in (hq_db(chain), edge_db(chain, "S002")):
        wait_until(lambda p=path: customer_by(p, "id", created["id"])["active"] == 1, 15, message=f"reactivated in {path}")
    state = wait_converged(chain)
    hq_row = customer_by(hq_db(chain), "id", created["id"])
    assert hq_row["origin_store"] == ""  # created at HQ, edited at stores: the origin stays
    assert len(state["customer"]) == 1


def test_every_replica_equals_hq_after_activity(chain, s001_client):
    for i in range(5):
        assert lane_request(s001_client, "S001", "L1", {"op": "create", "customer": {"first_name": f"P{i}", "last_name": "Store"}})["ok"]
        chain.hq_cli("customers", "add", "--first-name", f"H{i}", "--last-name", "Office")
    hq_state = wait_converged(chain)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state
    assert len(hq_state["customer"]) == 10
