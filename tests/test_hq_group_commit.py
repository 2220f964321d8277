"""HQ applies the up batches waiting for it in one transaction and acks each after
that commit (hq/service.py ``_drain_up``): a burst from several stores is applied
and acked once per batch, an ack never comes before its changes are in hq.db,
and a bad batch in the burst costs the others nothing."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
from helpers import wait_until

from hq.storage import connect_hq, is_postgres
from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import CUSTOMER_DEFAULTS
from lanehub.protocol import topics
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.hlc import HybridLogicalClock, now_iso
from lanehub.protocol.sync import StoreMessage, SyncReply, SyncRequest, UpBatch
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

STORES = ("S001", "S002", "S003")
BATCHES = 30  # per store, sent back to back
PER_BATCH = 4


def _store_client(chain, store: str) -> MqttClient:
    client = MqttClient(BrokerSettings(port=chain.hq_broker.port, username=store, password=chain.store_passwords[store]),
                        f"lanehub-edge-{store}")
    client.subscribe(topics.sync_replies_filter(store), lambda msg: None)
    client.start()
    assert client.wait_connected(10)
    return client


def _lease(client: MqttClient, store: str) -> list[int]:
    reply = client.request(topics.sync_req(store), SyncRequest(op="code_block", lease=new_id()).to_json(),
                           topics.sync_reply(store), 10)
    data = SyncReply.parse(reply.payload).data
    return list(range(data["start"], data["end"] + 1))


def _creates(store: str, numbers: list[int], clock: HybridLogicalClock) -> list[Change]:
    stamp, codes = now_iso(), CodeFormat(prefix="CUST-", width=5)
    return [Change(new_id(), "customer", new_id(), store, clock.now(), "test", dict(CUSTOMER_DEFAULTS) | {
        "first_name": "Burst", "last_name": store, "code": codes.format(n), "origin_store": store,
        "created_at": stamp, "created_by": "test", "updated_at": stamp, "updated_by": "test"}) for n in numbers]


@pytest.mark.parametrize("hq_backend", ["sqlite", "postgresql"])
def test_a_burst_of_up_batches_is_acked_once_per_batch_after_hq_holds_them(make_chain, hq_backend):
    chain = make_chain(STORES, start=False, block_size=BATCHES * PER_BATCH, hq_backend=hq_backend)
    chain.start_brokers()
    chain.register_stores()
    assert chain.hq is not None
    chain.hq.start()
    chain.hq.wait_for_log("lanehub-hq: connected", 20)
    hq_db = (connect_hq(chain.hq_db) if is_postgres(chain.hq_db)
             else sqlite3.connect(f"file:{chain.hq_db}?mode=ro", uri=True, check_same_thread=False))
    lock = threading.Lock()
    acks: dict[str, list[str]] = {}  # change id -> the stores' acks naming it
    missing_at_ack: list[str] = []
    errors: list[dict] = []
    clients, sent = {}, {}
    try:
        for store in STORES:
            client = _store_client(chain, store)
            clients[store] = client
            numbers = _lease(client, store)

            def on_store(msg, store=store):
                message = StoreMessage.parse(msg.payload)
                if message.type == "error":
                    errors.append(message.error)
                    return
                with lock:
                    for change_id in message.acked:
                        acks.setdefault(change_id, []).append(store)
                        keys = [c.key for c in sent[store] if c.id == change_id]
                        if keys and not hq_db.execute("SELECT 1 FROM customers WHERE id = ?", keys).fetchone():
                            missing_at_ack.append(change_id)

            client.subscribe(topics.sync_store(store), on_store)
            sent[store] = _creates(store, numbers[: BATCHES * PER_BATCH], HybridLogicalClock())
        wait_until(lambda: all(c.wait_connected(0) for c in clients.values()), 10)
        threading.Event().wait(0.3)  # the subscriptions above reach the broker
        for n in range(BATCHES):  # interleaved, back to back: HQ finds many waiting at once
            for store, client in clients.items():
                changes = sent[store][n * PER_BATCH:(n + 1) * PER_BATCH]
                client.publish(topics.sync_up(store), UpBatch(store=store, changes=[c.to_dict() for c in changes]).to_json())
            if n == BATCHES // 2:
                clients["S002"].publish(topics.sync_up("S002"), b'{"v": 1, "store": "S002", "changes": [')
        every = {c.id for changes in sent.values() for c in changes}
        wait_until(lambda: every <= set(acks), 30, message="every change of the burst acked")
        wait_until(lambda: errors, 10, message="the bad batch reported to its store")
    finally:
        for client in clients.values():
            client.stop()
    with lock:
        assert {change_id: stores for change_id, stores in acks.items() if len(stores) != 1} == {}
        assert missing_at_ack == [], "an ack came before HQ's database held its change"
    assert "S002" in json.dumps(errors[0]) or errors[0].get("topic", "").endswith("S002")
    count = hq_db.execute("SELECT count(*) FROM customers WHERE first_name = 'Burst'").fetchone()[0]
    assert count == len(STORES) * BATCHES * PER_BATCH
    hq_db.close()
