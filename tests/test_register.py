"""Customers at the register through real brokers: update contact details,
hand out a card, record consent (with history that reaches HQ), purchase
history from HQ or from local sales, tracking a sale after the fact, and an
e-receipt address that is never stored on the customer."""

from __future__ import annotations

import json
import queue

import pytest
from helpers import db_query, db_value, edge_db, hq_db, lane_request, wait_converged, wait_until
from shop import LANES, Lane

SHOP_STORE_SETTINGS = {"S001": {"email_fallback": "keep"}}


@pytest.fixture
def register(shop, mqtt):
    client = mqtt(shop.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    lane_id = f"L{next(LANES)}"

    def ask(op: str, **fields) -> dict:
        return lane_request(client, "S001", lane_id, {"op": op, **fields})

    ask.lane = Lane(client, "S001", lane_id)
    return ask


def new_customer(register, first: str) -> dict:
    reply = register("create", id=f"create-{first}", customer={"first_name": first, "last_name": "Register"})
    assert reply["ok"], reply
    return reply["customer"]


def test_contact_details_are_updated_at_the_register_and_reach_hq(shop, register):
    customer = new_customer(register, "Una")
    reply = register("update", ref=customer["code"], customer={"phone": "+34 600 111 222", "city": "Sevilla"})
    assert reply["ok"] and reply["customer"]["phone"] == "+34 600 111 222"
    wait_until(lambda: db_value(hq_db(shop), "SELECT city FROM customers WHERE id = ?", (customer["id"],))
               == "Sevilla", 15, message="the update at HQ")


@pytest.mark.parametrize("fields,field", [({"rate": "VIP"}, "rate"), ({"email": "not-an-address"}, "email"),
                                          ({"first_name": ""}, "first_name")])
def test_a_bad_update_names_the_field(register, fields, field):
    customer = new_customer(register, f"Bad{field}")
    reply = register("update", ref=customer["code"], customer=fields)
    assert not reply["ok"] and field in reply["errors"]


def test_a_card_handed_out_at_the_register_attaches_the_customer_next_time(shop, register):
    customer = new_customer(register, "Cara")
    reply = register("add_card", ref=customer["code"], card="loy-7001", kind="loyalty")
    assert reply["ok"]
    state = register.lane.card("LOY-7001")
    assert state["customer"]["id"] == customer["id"]
    wait_until(lambda: db_query(hq_db(shop), "SELECT customer_id FROM cards WHERE number = 'LOY-7001'"), 15,
               message="the card at HQ")
    other = new_customer(register, "Otto")
    reply = register("add_card", ref=other["code"], card="LOY-7001")
    assert not reply["ok"] and "already belongs to another customer" in reply["errors"]["card"]


def test_consent_changes_are_kept_as_history_and_replicate(shop, register):
    customer = new_customer(register, "Connie")
    reply = register("consent", ref=customer["code"], channel="email", granted=True, user="cashier-7")
    assert reply["ok"] and reply["customer"]["consents"] == {"email": True, "sms": False, "post": False}
    reply = register("consent", ref=customer["code"], channel="email", granted=False, user="cashier-7")
    assert reply["customer"]["consents"]["email"] is False
    rows = wait_until(lambda: (r := db_query(hq_db(shop), "SELECT * FROM consents WHERE customer_id = ? ORDER BY at, rid",
                                             (customer["id"],))) and len(r) == 2 and r, 15, message="both consents at HQ")
    assert [(r["channel"], bool(r["granted"]), r["store"], r["lane"], r["user"]) for r in rows] == [
        ("email", True, "S001", register.lane.lane, "cashier-7"), ("email", False, "S001", register.lane.lane, "cashier-7")]
    wait_converged(shop)
    assert len(db_query(edge_db(shop, "S002"), "SELECT * FROM consents WHERE customer_id = ?", (customer["id"],))) == 2


def test_malformed_register_requests_are_refused_with_a_reason(register):
    reply = register("consent", ref="CUST-99999", channel="fax", granted=True)
    assert not reply["ok"] and "channel" in reply["error"]
    reply = register("add_card", card="X-1")
    assert not reply["ok"] and "ref" in reply["error"]
    reply = register("update", ref="NOBODY-1", customer={"city": "X"})
    assert not reply["ok"] and "no customer" in reply["error"]


def test_purchase_history_comes_from_hq_and_a_sale_can_be_tracked_after_the_fact(shop, register):
    customer = new_customer(register, "Hedda")
    lane = register.lane
    lane.cmd("set_customer", code=customer["code"])
    lane.scan("8410000000011")
    first = lane.cmd("close")["ticket"]
    lane.scan("2000000000015")  # bought without showing a card...
    second = lane.cmd("close")["ticket"]
    shop.edge_cli("S001", "sales", "track", second, customer["code"])  # ...and tracked at the desk
    wait_until(lambda: db_query(hq_db(shop), "SELECT count(*) FROM sales WHERE customer_id = ?", (customer["id"],))[0][0] == 2,
               15, message="both sales on the customer at HQ")
    reply = register("history", ref=customer["code"])
    assert reply["ok"] and reply["source"] == "hq"
    assert {h["ticket"] for h in reply["history"]} == {first, second}
    items = {item["sku"]: item for h in reply["history"] for item in h["items"]}
    assert items["MILK"]["brand"] == "Dairyco" and items["BREAD"]["size"] == "250g"

    out = shop.edge_cli("S001", "sales", "track", second, shop.people["Ann"]["code"], check=False)
    assert out.returncode != 0 and "already belongs to another customer" in out.stderr


def test_purchase_history_falls_back_to_local_sales_when_hq_is_down(shop, register):
    customer = new_customer(register, "Lola")
    lane = register.lane
    lane.cmd("set_customer", code=customer["code"])
    lane.scan("8410000000011")
    ticket = lane.cmd("close")["ticket"]
    shop.hq.kill()
    try:
        reply = register("history", ref=customer["code"])
    finally:
        shop.hq.start()
    assert reply["ok"] and reply["source"] == "local"
    assert [h["ticket"] for h in reply["history"]] == [ticket]


def test_an_e_receipt_address_stays_with_the_receipt_not_the_customer(shop, register):
    # This shop has no [mail] and keeps e-mail receipts (SHOP_STORE_SETTINGS): the
    # address stays with the receipt, queued (tests/test_mail_receipts.py sends them).
    customer = new_customer(register, "Elsa")
    lane = register.lane
    lane.cmd("set_customer", code=customer["code"])
    lane.scan("8410000000011")
    state = lane.cmd("close", email="elsa@example.com")
    assert state["status"] == "closed"
    row = db_query(edge_db(shop, "S001"), "SELECT status, email FROM print_jobs WHERE ticket = ?", (state["ticket"],))[0]
    assert (row["status"], row["email"]) == ("email", "elsa@example.com")
    with pytest.raises(queue.Empty):
        lane.jobs.get(timeout=1)
    wait_until(lambda: db_query(hq_db(shop), "SELECT 1 FROM sales WHERE ticket = ?", (state["ticket"],)), 15)
    for path in (edge_db(shop, "S001"), hq_db(shop)):
        assert db_query(path, "SELECT email FROM customers WHERE id = ?", (customer["id"],))[0]["email"] == ""
        sale = db_query(path, "SELECT * FROM sales WHERE ticket = ?", (state["ticket"],))
        assert not sale or "elsa@" not in json.dumps(dict(sale[0]))
