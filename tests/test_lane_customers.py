"""Lanes search and create customers over lanehub/{store}/lane/{lane}/customer/req."""

from __future__ import annotations

import uuid

import pytest
from helpers import customer_by, edge_db, hq_db, lane_request, wait_until

from edge.db import EdgeDatabase, NotReady
from lanehub.domain.search import search_customers
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp


@pytest.fixture
def replica(tmp_path):
    """A ready store replica with a few customers, as a snapshot would leave it."""
    db = EdgeDatabase(tmp_path / "edge.db", "S001")
    db.set_codes("CUST-", 5)
    db.finish_snapshot(0)
    db.add_block("lease-1", 100, 199)
    people = [
        ("Ana", "García", "ana@example.com", "+34 600 111 222", "28001"),
        ("Anabel", "Gómez", "", "", "08001"),
        ("Juan", "Ana", "", "", ""),
        ("Zoë", "Núñez", "zoe@example.com", "", "46001"),
        ("María", "García", "maria@example.com", "+34 611 000 000", "28001"),
    ]
    made = {}
    for first, last, email, phone, postcode in people:
        made[first] = db.create_customer({"first_name": first, "last_name": last, "email": email, "phone": phone,
                                          "postcode": postcode}, "test")
    yield db, made
    db.close()


def codes(results):
    return [r["code"] for r in results]


def test_search_by_name_prefix_ranks_exact_and_starting_names_first(replica):
    db, made = replica
    results = search_customers(db.conn, "ana")
    names = [(r["first_name"], r["last_name"]) for r in results]
    assert set(names) == {("Ana", "García"), ("Anabel", "Gómez"), ("Juan", "Ana")}
    assert names[0] == ("Ana", "García")  # the name starts with the query


def test_search_ignores_accents_and_case(replica):
    db, made = replica
    assert codes(search_customers(db.conn, "zoe nunez")) == [made["Zoë"]["code"]]
    assert codes(search_customers(db.conn, "GARCIA maria")) == [made["María"]["code"]]


@pytest.mark.parametrize("query_of", [
    lambda m: m["Zoë"]["code"],
    lambda m: m["Zoë"]["code"].lower(),
    lambda m: "zoe@example.com",
    lambda m: "ZOE@example.com",
])
def test_search_by_code_or_email_finds_exactly_one(replica, query_of):
    db, made = replica
    assert codes(search_customers(db.conn, query_of(made)))[:1] == [made["Zoë"]["code"]]


def test_search_by_phone_digits_in_any_format(replica):
    db, made = replica
    for q in ("+34 600 111 222", "34600111222", "346001"):
        assert codes(search_customers(db.conn, q))[0] == made["Ana"]["code"], q


def test_search_by_postcode_returns_everyone_there(replica):
    db, made = replica
    assert set(codes(search_customers(db.conn, "28001"))) == {made["Ana"]["code"], made["María"]["code"]}


def test_search_by_card_number(replica):
    db, made = replica
    from lanehub.replication.sqlite import transaction

    with transaction(db.conn):
        db.write("card", str(uuid.uuid4()),
                 {"number": "LOY-0042", "customer_id": made["Juan"]["id"], "kind": "loyalty", "active": True}, "t")
    assert codes(search_customers(db.conn, "loy-0042")) == [made["Juan"]["code"]]


def test_deactivated_customers_are_hidden_from_lanes(replica):
    db, made = replica
    db.update_customer(made["Zoë"]["id"], {"active": False}, "test")
    assert search_customers(db.conn, "zoe") == []
    assert search_customers(db.conn, made["Zoë"]["code"]) == []


def test_a_replaced_provisional_code_still_finds_the_customer(replica):
    db, made = replica
    key = made["Anabel"]["id"]
    db.apply_down([
        Change(str(uuid.uuid4()), "code_alias", str(uuid.uuid4()), "hq", format_stamp(2_000_000_000_000, 0), "hq",
               {"alias": "CUST-S001-P0001", "customer_id": key}, 1),
    ])
    assert codes(search_customers(db.conn, "CUST-S001-P0001")) == [made["Anabel"]["code"]]


def test_search_results_never_carry_internal_notes(replica):
    db, made = replica
    db.update_customer(made["Ana"]["id"], {"notes": "owes us a parcel"}, "test")
    result = search_customers(db.conn, "ana garcia")[0]
    assert "notes" not in result and result["code"] == made["Ana"]["code"]


def test_create_takes_codes_from_the_leased_block_in_order(replica):
    db, made = replica
    assert [made[n]["code"] for n in ("Ana", "Anabel", "Juan")] == ["CUST-00100", "CUST-00101", "CUST-00102"]
    assert db.codes_left() == 100 - len(made)


def test_a_store_without_its_first_snapshot_refuses_to_create(tmp_path):
    db = EdgeDatabase(tmp_path / "new.db", "S001")
    with pytest.raises(NotReady):
        db.create_customer({"first_name": "A", "last_name": "B"}, "t")


# --- over MQTT, against a running edge --------------------------------------------------

def test_lane_create_returns_the_final_code_at_once_and_is_searchable_at_once(chain, s001_client):
    katherine = {"first_name": "Katherine", "last_name": "Johnson", "phone": "+1 757 555 0100"}
    reply = lane_request(s001_client, "S001", "L1", {"op": "create", "id": str(uuid.uuid4()), "customer": katherine})
    assert reply["ok"] and reply["error"] is None
    code = reply["customer"]["code"]
    assert code.startswith("CUST-") and "-P" not in code
    found = lane_request(s001_client, "S001", "L2", {"op": "search", "q": "johnson"})
    assert found["ok"] and [c["code"] for c in found["customers"]] == [code]
    assert lane_request(s001_client, "S001", "L2", {"op": "search", "q": "17575550100"})["customers"][0]["code"] == code
    wait_until(lambda: customer_by(hq_db(chain), "code", code), 15, message="the customer at HQ")


def test_a_redelivered_create_makes_one_customer(chain, s001_client):
    request = {"op": "create", "id": str(uuid.uuid4()), "customer": {"first_name": "Dup", "last_name": "Licate"}}
    first = lane_request(s001_client, "S001", "L1", request)
    second = lane_request(s001_client, "S001", "L1", request)
    assert first["ok"] and second["ok"]
    assert first["customer"]["code"] == second["customer"]["code"]
    wait_until(lambda: customer_by(hq_db(chain), "code", first["customer"]["code"]), 15, message="the customer at HQ")
    from helpers import db_query

    assert db_query(edge_db(chain, "S001"), "SELECT count(*) FROM customers WHERE last_name = 'Licate'")[0][0] == 1


def test_an_invalid_create_replies_with_the_fields_in_error(chain, s001_client):
    reply = lane_request(s001_client, "S001", "L1", {"op": "create", "customer": {"first_name": "", "last_name": "X", "email": "bad"}})
    assert reply["ok"] is False
    assert set(reply["errors"]) == {"first_name", "email"}
    assert "first_name is required" in reply["error"]
