"""On the HQ broker a client id belongs to its user: a store's credentials cannot
take over HQ's session or another store's, whatever client id they send."""

from __future__ import annotations

import time
import uuid

import pytest
from helpers import customer_by, edge_db, hq_db, lane_request, wait_until

from lanehub.runtime.mqtt import BrokerSettings, MqttClient


def log_size(proc) -> int:
    return proc.log_path.stat().st_size


def log_since(proc, offset: int) -> str:
    with open(proc.log_path, errors="replace") as fh:
        fh.seek(offset)
        return fh.read()


@pytest.mark.parametrize("victim, client_id", [("hq", "lanehub-hq"), ("S002", "lanehub-edge-S002")])
def test_a_store_using_another_clients_id_does_not_take_its_session(chain, mqtt, victim, client_id):
    proc = chain.hq if victim == "hq" else chain.edges[victim]
    before = log_size(proc)
    impostor = MqttClient(BrokerSettings(port=chain.hq_broker.port, username="S001",
                                         password=chain.store_passwords["S001"]), client_id)
    impostor.start()
    try:
        assert impostor.wait_connected(10), "S001's credentials are valid: the impostor connects"
        time.sleep(3)  # long enough for the victim to be kicked off and to kick back, several times
    finally:
        impostor.stop()
    log = log_since(proc, before)
    assert "lost HQ broker" not in log and "another client connected" not in log, log

    # The victim's link was never interrupted: it still carries changes.
    lane = mqtt(chain.store_brokers["S002"].port)
    lane.subscribe("test/#", lambda m: None)
    made = lane_request(lane, "S002", "L1", {"op": "create", "id": str(uuid.uuid4()),
                                             "customer": {"first_name": "Still", "last_name": "Mine"}})
    assert made["ok"], made
    wait_until(lambda: customer_by(hq_db(chain), "id", made["customer"]["id"]), 20, message="S002's create at HQ")
    wait_until(lambda: customer_by(edge_db(chain, "S001"), "id", made["customer"]["id"]), 20,
               message="S002's create at S001")


def test_the_hq_broker_configs_tie_client_ids_to_user_names(chain):
    assert "use_username_as_clientid true" in chain.hq_broker.conf_path.read_text().splitlines()
    assert "use_username_as_clientid true" not in chain.store_brokers["S001"].conf_path.read_text()
