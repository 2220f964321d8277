"""A store out of leased numbers while offline gives provisional codes at once;
after sync HQ replaces them with permanent codes and the old codes still resolve."""

from __future__ import annotations

import json

from helpers import db_query, edge_db, hq_db, lane_request, replica_state, wait_converged, wait_until


def test_provisional_codes_offline_become_permanent_and_stay_resolvable(make_chain, mqtt):
    chain = make_chain(block_size=3, code_low_water=1)
    lane = mqtt(chain.store_brokers["S001"].port)
    lane.subscribe("test/#", lambda m: None)
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT count(*) FROM code_blocks")[0][0] >= 1, 10,
               message="S001's first code block")
    chain.hq_broker.stop()
    made = [lane_request(lane, "S001", "L1", {"op": "create", "customer": {"first_name": f"Off{i}", "last_name": "Line"}})
            for i in range(5)]
    assert all(reply["ok"] for reply in made)
    codes = [reply["customer"]["code"] for reply in made]
    assert "-P" not in codes[0]
    assert codes[-2:] == ["CUST-S001-P0001", "CUST-S001-P0002"]  # usable at once, while offline

    chain.hq_broker.start()
    hq_state = wait_converged(chain, 40)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state
    final = {row["id"]: row["code"] for row in db_query(hq_db(chain), "SELECT id, code FROM customers")}
    assert len(set(final.values())) == len(final)  # never reused, never shared
    for reply in made[-2:]:
        provisional, key = reply["customer"]["code"], reply["customer"]["id"]
        permanent = final[key]
        assert "-P" not in permanent and permanent.startswith("CUST-")
        assert json.loads(chain.hq_cli("customers", "show", provisional).stdout)["code"] == permanent
        assert json.loads(chain.edge_cli("S002", "customers", "show", provisional).stdout)["code"] == permanent
        found = lane_request(lane, "S001", "L2", {"op": "search", "q": provisional})["customers"]
        assert [(c["id"], c["code"]) for c in found] == [(key, permanent)]
