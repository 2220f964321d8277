"""Household coupons through real brokers, a real HQ and two real stores:
redeemed once in the whole chain, reserved while a ticket holds them, and the
offline policy (S001 deny, S002 allow) honoured both ways."""

from __future__ import annotations

import json

import pytest
from helpers import db_query, edge_db, hq_db, wait_converged, wait_until
from shop import LANES, Lane


@pytest.fixture
def family(shop):
    """A household (head + member), and a coupon issued to the household."""
    n = next(LANES)
    people = {}
    for first in ("Hanna", "Milo"):
        out = shop.hq_cli("customers", "add", "--first-name", f"{first}{n}", "--last-name", "Family").stdout
        people[first] = json.loads(out)
    shop.hq_cli("households", "add", f"Family {n}", "--head", people["Hanna"]["code"])
    shop.hq_cli("households", "join", people["Hanna"]["code"], people["Milo"]["code"])
    coupon = f"FAMILY-{n}"
    shop.hq_cli("coupons", "issue", "--household", people["Hanna"]["code"], "--amount", "2.00", "--code", coupon)
    wait_converged(shop)
    return people, coupon


@pytest.fixture
def lanes(shop, mqtt):
    def make(store: str) -> Lane:
        return Lane(mqtt(shop.store_brokers[store].port), store, f"L{next(LANES)}")
    return make


def codes(state) -> set[str]:
    return {w["code"] for w in state["warnings"]}


def test_a_household_coupon_redeemed_in_one_store_is_refused_in_the_other_and_again(shop, family, lanes):
    people, coupon = family
    a, b = lanes("S001"), lanes("S002")
    a.cmd("set_customer", code=people["Milo"]["code"])
    a.scan("8410000000011")
    a.cmd("add", sku="MILK", qty=2)
    state = a.cmd("apply_coupon", coupon=coupon)
    assert state["coupon"] == {"code": coupon, "kind": "amount", "value": "2.00", "discount": "2.00", "mode": "online"}
    assert (state["subtotal"], state["total"]) == ("3.60", "1.60")
    a.cmd("close")
    receipt = a.jobs.get(timeout=10)["receipt"]
    assert receipt["coupon"] == {"code": coupon, "discount": "2.00"} and receipt["total"] == "1.60"
    wait_until(lambda: db_query(hq_db(shop), "SELECT 1 FROM coupon_uses u JOIN coupons c ON c.id = u.coupon_id "
                                             "WHERE c.code = ?", (coupon,)), 15, message="the redemption at HQ")

    b.cmd("set_customer", code=people["Hanna"]["code"])  # the household's head, another store
    b.scan("8410000000011")
    state = b.cmd("apply_coupon", coupon=coupon)
    assert "coupon_refused" in codes(state) and state["coupon"] is None and state["total"] == "1.20"
    assert "already redeemed" in state["warnings"][0]["message"]

    a.cmd("set_customer", code=people["Hanna"]["code"])
    a.scan("8410000000011")
    state = a.cmd("apply_coupon", coupon=coupon)
    assert "coupon_refused" in codes(state) and state["coupon"] is None


def test_a_coupon_held_by_an_open_ticket_is_refused_elsewhere_until_that_ticket_is_voided(shop, family, lanes):
    people, coupon = family
    a, b = lanes("S001"), lanes("S002")
    for lane, who in ((a, "Milo"), (b, "Hanna")):
        lane.cmd("set_customer", code=people[who]["code"])
        lane.scan("2000000000015")
    assert a.cmd("apply_coupon", coupon=coupon)["coupon"]["mode"] == "online"
    state = b.cmd("apply_coupon", coupon=coupon)
    assert "coupon_refused" in codes(state) and "another ticket" in state["warnings"][0]["message"]
    a.cmd("void")
    state = wait_until(lambda: (s := b.cmd("apply_coupon", coupon=coupon))["coupon"] and s, 10, 0.2,
                       message="the coupon released by the void")
    assert state["coupon"]["discount"] == "0.95"  # never more than the ticket


def test_coupons_of_someone_else_disabled_or_percent(shop, family, lanes):
    people, coupon = family
    a = lanes("S001")
    state = a.cmd("apply_coupon", coupon=coupon)
    assert "no_open_ticket" in codes(state)
    a.cmd("set_customer", code=shop.people["Ann"]["code"])  # not in the household
    a.scan("8410000000011")
    state = a.cmd("apply_coupon", coupon=coupon)
    assert "issued to another customer or household" in state["warnings"][0]["message"]
    out = shop.hq_cli("coupons", "issue", "--customer", shop.people["Ann"]["code"], "--percent", "25").stdout
    percent = json.loads(out)["code"]
    shop.hq_cli("coupons", "issue", "--customer", shop.people["Ann"]["code"], "--amount", "1", "--code", f"OFF-{coupon}")
    shop.hq_cli("coupons", "disable", f"OFF-{coupon}")
    wait_converged(shop)
    state = a.cmd("apply_coupon", coupon=f"OFF-{coupon}")
    assert "disabled" in state["warnings"][0]["message"]
    state = a.cmd("apply_coupon", coupon=percent)  # Ann's rate makes milk 1.08; 25 % of it
    assert (state["coupon"]["discount"], state["total"]) == ("0.27", "0.81")


def test_offline_policy_deny_and_allow_and_the_double_redemption_is_flagged(shop, family, lanes):
    people, coupon = family
    a, b = lanes("S001"), lanes("S002")
    for lane, who in ((a, "Milo"), (b, "Hanna")):
        lane.cmd("set_customer", code=people[who]["code"])
        lane.scan("8410000000011")
    shop.hq_broker.kill()  # HQ unreachable from every store
    try:
        wait_until(lambda: db_query(edge_db(shop, "S002"), "SELECT 1 FROM meta WHERE key = 'snapshot_done'"), 5)
        state = wait_until(lambda: (s := a.cmd("apply_coupon", coupon=coupon)) and "coupon_offline" in codes(s) and s,
                           15, 0.2, message="S001 (deny) refusing the coupon offline")
        assert state["coupon"] is None
        state = wait_until(lambda: (s := b.cmd("apply_coupon", coupon=coupon))["coupon"] and s, 15, 0.2,
                           message="S002 (allow) accepting the coupon offline")
        assert state["coupon"]["mode"] == "offline" and state["total"] == "0.00"
        b.cmd("close")
        shop.edges["S002"].stop()  # its redemption waits in its outbox...
    finally:
        shop.hq_broker.start()
    state = wait_until(lambda: (s := a.cmd("apply_coupon", coupon=coupon))["coupon"] and s, 30, 0.5,
                       message="S001 redeeming online once HQ is back")
    assert state["coupon"]["mode"] == "online"
    a.cmd("close")  # ...while S001 redeems online,
    wait_until(lambda: db_query(hq_db(shop), "SELECT 1 FROM coupon_uses WHERE store = 'S001' AND coupon_id IN "
                                             "(SELECT id FROM coupons WHERE code = ?)", (coupon,)), 15)
    shop.edges["S002"].start()  # then S002's offline redemption arrives and HQ flags it
    flagged = wait_until(lambda: db_query(hq_db(shop), "SELECT * FROM coupon_double_uses WHERE coupon_id IN "
                                                       "(SELECT id FROM coupons WHERE code = ?)", (coupon,)), 30,
                         message="the double redemption flagged at HQ")
    assert flagged[0]["store"] == "S002" and flagged[0]["other_ticket"].startswith("S001-")
    out = shop.hq_cli("coupons", "double-uses").stdout
    assert coupon in out
    wait_converged(shop, 60)
    assert len(db_query(edge_db(shop, "S001"), "SELECT * FROM coupon_uses u JOIN coupons c ON c.id = u.coupon_id "
                                               "WHERE c.code = ?", (coupon,))) == 2
