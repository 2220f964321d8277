"""A store's HQ broker credentials reach only its own topics (the ACL HQ writes)."""

from __future__ import annotations

import json
import time

from helpers import wait_until

from lanehub.protocol import topics
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

FOREIGN = [topics.sync_up("S002"), topics.sync_req("S002"), topics.sync_status("S002"), topics.sync_down(),
           topics.sync_store("S002"), topics.error("hq")]


def stop_own_clients(chain) -> None:
    """A client id is its user name on the HQ broker: the probes below log in as S001
    and hq, so the real ones step aside (or each would take the other's session)."""
    chain.edges["S001"].stop()
    chain.hq.stop()


def test_a_store_cannot_publish_on_topics_not_its_own_but_can_on_its_own(chain, mqtt):
    stop_own_clients(chain)
    port = chain.hq_broker.port
    s001 = mqtt(port, "S001", chain.store_passwords["S001"])
    spy = mqtt(port, "hq", chain.hq_password)
    seen: list[bytes] = []
    spy.subscribe("lanehub/#", lambda m: seen.append(m.payload))
    time.sleep(0.3)  # let the spy's SUBSCRIBE settle before the probes
    for topic in FOREIGN:
        probe = json.dumps({"v": 1, "probe": topic}).encode()
        result = s001.publish_acked(topic, probe)
        assert not result.ok and "authorized" in result.reason.lower(), (topic, result)
    own = json.dumps({"v": 1, "state": "online", "probe": "own"}).encode()
    assert s001.publish_acked(topics.sync_status("S001"), own).ok
    wait_until(lambda: own in seen, 5, message="the spy to see S001's own status")
    assert not [p for p in seen if b'"probe": "lanehub/' in p]  # none of the refused probes got through


def test_a_store_does_not_receive_another_stores_messages(chain, mqtt):
    stop_own_clients(chain)
    s001 = mqtt(chain.hq_broker.port, "S001", chain.store_passwords["S001"])
    got: list[str] = []
    s001.subscribe(f"{topics.sync_store('S002')}/#", lambda m: got.append(m.topic))
    s001.subscribe(topics.sync_store("S002"), lambda m: got.append(m.topic))
    s001.subscribe(topics.sync_up("S002"), lambda m: got.append(m.topic))
    hq = mqtt(chain.hq_broker.port, "hq", chain.hq_password)
    for topic in (topics.sync_store("S002"), topics.sync_reply("S002"), topics.sync_up("S002")):
        assert hq.publish_acked(topic, b'{"v":1}').ok
    time.sleep(0.5)
    assert got == []


def test_unknown_or_wrong_credentials_are_refused_at_connect(chain):
    for username, password in [("S001", "wrong"), ("", ""), ("S009", "whatever")]:
        client = MqttClient(BrokerSettings(port=chain.hq_broker.port, username=username, password=password), "probe")
        client.start()
        try:
            assert not client.wait_connected(2), (username, password)
        finally:
            client.stop()


def test_free_ports_are_never_handed_out_twice_in_one_process():
    from lanehub.chain.mosquitto import free_port

    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
