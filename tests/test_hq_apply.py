"""HQ's apply rules for store changes: defer what is early, refuse what is wrong, keep store status."""

from __future__ import annotations

import time
import uuid

import pytest

from edge.db import EdgeDatabase, NotReady
from hq.db import HQDatabase
from lanehub.domain.codes import CodeFormat
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp

NOW = int(time.time() * 1000)


@pytest.fixture
def hq(hq_target):
    db = HQDatabase(hq_target, CodeFormat(), block_size=10)
    db.add_store("S001")
    db.lease_block("S001", "lease-1")  # numbers 1-10
    yield db
    db.close()


def create(key, code="CUST-00001", ms=NOW, last_name="Lovelace", **extra):
    return Change(str(uuid.uuid4()), "customer", key, "S001", format_stamp(ms, 0), "t",
                  {"code": code, "first_name": "Ada", "last_name": last_name, "origin_store": "S001",
                   "created_at": "2026-11-24T10:00:00+00:00"} | extra)


def edit(key, ms=NOW + 1, **fields):
    return Change(str(uuid.uuid4()), "customer", key, "S001", format_stamp(ms, 0), "t", fields)


def test_an_edit_that_overtakes_its_create_waits_and_then_applies(hq):
    key = str(uuid.uuid4())
    early = edit(key, city="Paris")
    [outcome] = hq.apply_store_changes("S001", [early.to_dict()])
    assert not outcome.ok and outcome.deferred
    assert hq.rejections() == [] and hq.head() == 0
    outcomes = hq.apply_store_changes("S001", [create(key).to_dict(), early.to_dict()])  # the resend
    assert [o.ok for o in outcomes] == [True, True]
    assert hq.replica.get("customer", key)["city"] == "Paris"


def test_an_edit_of_a_refused_create_is_refused_with_the_reason(hq):
    key = str(uuid.uuid4())
    [bad] = hq.apply_store_changes("S001", [create(key, code="CUST-00099").to_dict()])  # never leased
    assert not bad.ok and "was not leased to S001" in bad.reason
    [later] = hq.apply_store_changes("S001", [edit(key, city="Paris").to_dict()])
    assert not later.ok and not later.deferred and "refused by HQ" in later.reason


def test_a_card_for_a_customer_not_yet_at_hq_waits(hq):
    key = str(uuid.uuid4())
    card = Change(str(uuid.uuid4()), "card", str(uuid.uuid4()), "S001", format_stamp(NOW, 5), "t",
                  {"number": "LOY-1", "customer_id": key, "kind": "loyalty", "active": True})
    [first] = hq.apply_store_changes("S001", [card.to_dict()])
    assert first.deferred
    assert [o.ok for o in hq.apply_store_changes("S001", [create(key).to_dict(), card.to_dict()])] == [True, True]


@pytest.mark.parametrize("change, reason", [
    (lambda k: create(k, last_name=""), "last_name is required"),
    (lambda k: create(k, code="CUST-S002-P0001"), "does not belong to S001"),
    (lambda k: create(k, ms=NOW + 3600_000), "clock is"),
    (lambda k: Change(str(uuid.uuid4()), "code_alias", k, "S001", format_stamp(NOW, 0), "t", {"alias": "X", "customer_id": k}),
     "cannot write code_alias"),
    (lambda k: Change(str(uuid.uuid4()), "customer", k, "S002", format_stamp(NOW, 0), "t", {"city": "X"}), "does not match"),
])
def test_invalid_changes_are_refused_and_the_next_one_still_applies(hq, change, reason):
    bad = change(str(uuid.uuid4()))
    good_key = str(uuid.uuid4())
    outcomes = hq.apply_store_changes("S001", [bad.to_dict(), create(good_key, code="CUST-00002").to_dict()])
    assert not outcomes[0].ok and reason in outcomes[0].reason
    assert outcomes[1].ok and hq.replica.get("customer", good_key)
    assert hq.rejections()[0]["reason"] == outcomes[0].reason


def test_a_stores_last_will_keeps_its_last_known_figures(hq):
    hq.record_status("S001", "online", 7, 42, time.time())
    hq.record_status("S001", "offline", 0, 0, 0.0)  # the will carries no figures
    store = hq.stores()[0]
    assert (store["link_state"], store["pending_up"], store["last_seq"]) == ("offline", 7, 42)


def test_a_provisional_code_is_replaced_and_stays_an_alias(hq):
    key = str(uuid.uuid4())
    [outcome] = hq.apply_store_changes("S001", [create(key, code="CUST-S001-P0001").to_dict()])
    assert outcome.ok
    record = hq.replica.get("customer", key)
    assert record["code"] == "CUST-00011"  # the next number after S001's block
    assert hq.find_customer("CUST-S001-P0001")["id"] == key


# --- the edge's side of a rejection ---------------------------------------------------

@pytest.fixture
def edge(tmp_path):
    db = EdgeDatabase(tmp_path / "edge.db", "S001")
    db.set_codes("CUST-", 5)
    db.finish_snapshot(0)
    db.add_block("l", 1, 10)
    yield db
    db.close()


def test_a_refused_edit_gives_back_only_the_fields_it_still_holds(edge):
    customer = edge.create_customer({"first_name": "Ada", "last_name": "Lovelace", "city": "London"}, "t")
    edge.acked([row[0] for row in edge.conn.execute("SELECT id FROM outbox")])
    hq_record, hq_clocks = dict(customer), edge.replica.clocks("customer", customer["id"])
    edge.update_customer(customer["id"], {"city": "Paris", "email": "ada@example.com"}, "t")
    refused_id = edge.conn.execute("SELECT id FROM outbox").fetchone()[0]
    edge.update_customer(customer["id"], {"email": "ada@lovelace.org"}, "t")  # a later local edit
    edge.rejected({"id": refused_id, "reason": "test", "entity": "customer", "key": customer["id"],
                   "record": hq_record, "clocks": hq_clocks})
    now = edge.replica.get("customer", customer["id"])
    assert now["city"] == "London"  # back to HQ's value
    assert now["email"] == "ada@lovelace.org"  # the later edit stays
    assert edge.rejections()[0]["reason"] == "test"
    assert edge.pending_up() == 1


def test_a_refused_create_leaves_the_replica_and_its_redelivered_request_gets_an_answer(edge):
    customer = edge.create_customer({"first_name": "Ada", "last_name": "Lovelace"}, "t", request_id="r-1")
    change_id = edge.conn.execute("SELECT id FROM outbox").fetchone()[0]
    edge.rejected({"id": change_id, "reason": "code in use", "entity": "customer", "key": customer["id"], "record": None})
    assert edge.replica.get("customer", customer["id"]) is None
    assert edge.pending_up() == 0
    with pytest.raises(NotReady, match="refused by HQ"):
        edge.create_customer({"first_name": "Ada", "last_name": "Lovelace"}, "t", request_id="r-1")
