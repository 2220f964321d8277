"""Each store gets what it needs (lanehub/protocol/routes.py, D45): a sale goes
to HQ and its own store only, every store gets the customer's compact purchase
summary (enough for the register's history while HQ is away), a sale HQ tracks
to a customer reaches its store through a seq held for it, and a store's
catch-up and snapshot carry its own sales and not the others'. Real brokers,
HQ and two edges; the log's ranges at the database level."""

from __future__ import annotations

import json

from helpers import db_query, db_value, edge_db, hq_db, lane_request, wait_converged, wait_until
from shop import LANES, Lane

from edge.db import EdgeDatabase
from hq.db import HQDatabase
from lanehub.domain.codes import CodeFormat
from lanehub.domain.sales import purchase_history
from lanehub.protocol.change import Change, new_id


def sell(shop, mqtt, store: str, customer_code: str | None, *codes: str) -> str:
    lane = Lane(mqtt(shop.store_brokers[store].port), store, f"L{next(LANES)}")
    if customer_code:
        lane.cmd("set_customer", code=customer_code)
    for code in codes:
        lane.scan(code)
    return lane.cmd("close")["ticket"]


def summary_tickets(path, customer_id: str) -> list[str]:
    raw = db_value(path, "SELECT purchases FROM purchase_summaries WHERE customer_id = ?", (customer_id,))
    return [p["ticket"] for p in json.loads(raw or "[]")]


def test_a_sale_goes_to_hq_and_its_store_only_and_every_store_gets_the_summary(shop, mqtt):
    pete = shop.people["Pete"]
    ticket = sell(shop, mqtt, "S001", pete["code"], "8410000000011", "2000000000015")
    wait_until(lambda: db_value(hq_db(shop), "SELECT count(*) FROM sales WHERE ticket = ?", (ticket,)) == 1, 15,
               message="the sale at HQ")
    wait_until(lambda: ticket in summary_tickets(edge_db(shop, "S002"), pete["id"]), 15,
               message="Pete's purchase summary at S002")
    wait_converged(shop)
    assert db_value(edge_db(shop, "S002"), "SELECT count(*) FROM sales WHERE ticket = ?", (ticket,)) == 0
    assert db_value(edge_db(shop, "S001"), "SELECT count(*) FROM sales WHERE ticket = ?", (ticket,)) == 1
    # The register at S002, with HQ away, shows the purchase made at S001.
    client = mqtt(shop.store_brokers["S002"].port)
    client.subscribe("test/#", lambda m: None)
    shop.hq.kill()
    try:
        reply = lane_request(client, "S002", f"L{next(LANES)}", {"op": "history", "ref": pete["code"]})
    finally:
        shop.hq.start()
    assert reply["ok"] and reply["source"] == "local"
    [bought] = [h for h in reply["history"] if h["ticket"] == ticket]
    assert bought["store"] == "S001" and {i["sku"]: i["brand"] for i in bought["items"]} == {
        "MILK": "Dairyco", "BREAD": db_value(hq_db(shop), "SELECT brand FROM products WHERE sku = 'BREAD'")}


def test_a_sale_tracked_at_hq_reaches_its_own_store_through_a_held_seq_and_not_the_other(shop, mqtt):
    cleo = shop.people["Cleo"]
    ticket = sell(shop, mqtt, "S001", None, "8410000000011")
    wait_until(lambda: db_value(hq_db(shop), "SELECT count(*) FROM sales WHERE ticket = ?", (ticket,)) == 1, 15,
               message="the sale at HQ")
    shop.hq_cli("sales", "track", ticket, cleo["code"])
    wait_until(lambda: db_value(edge_db(shop, "S001"), "SELECT customer_id FROM sales WHERE ticket = ?", (ticket,))
               == cleo["id"], 15, message="the tracked sale back at S001")
    wait_converged(shop)
    assert ticket in summary_tickets(edge_db(shop, "S002"), cleo["id"])
    assert db_value(edge_db(shop, "S002"), "SELECT count(*) FROM sales WHERE ticket = ?", (ticket,)) == 0
    refused = shop.edge_cli("S002", "sales", "track", ticket, shop.people["Ann"]["code"], check=False)
    assert refused.returncode != 0 and "a store keeps only its own sales; track it at S001 or at HQ" in refused.stderr
    head = db_value(hq_db(shop), "SELECT max(seq) FROM changes")
    assert all(db_value(edge_db(shop, s), "SELECT value FROM meta WHERE key = 'last_seq'") == str(head)
               for s in ("S001", "S002"))


# --- the log and the replicas, without processes -------------------------------------------

def _sale(store: str, ticket: str, customer_id: str = "") -> dict:
    return {"ticket": ticket, "store": store, "lane": "L1", "customer_id": customer_id,
            "closed_at": "2026-12-01T10:00:00+00:00", "total": "1.20", "currency": "EUR",
            "lines": json.dumps([{"sku": "MILK", "description": "Milk", "brand": "Dairyco", "qty": "1", "amount": "1.20"}])}


def _store_change(store: str, ticket: str, clock_ms: int, customer_id: str = "") -> dict:
    return Change(new_id(), "sale", new_id(), store, f"{clock_ms:013d}-000000", "lane:L1",
                  _sale(store, ticket, customer_id)).to_dict()


def test_catch_up_and_snapshot_give_a_store_its_own_sales_and_cover_the_others(hq_target, tmp_path):
    hq = HQDatabase(hq_target, CodeFormat())
    for store in ("S001", "S002"):
        hq.add_store(store)
    ann = hq.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t")
    start = hq.head()
    hq.apply_store_changes("S001", [_store_change("S001", "S001-L1-1", 1_760_000_000_000, ann["id"])])
    hq.apply_store_changes("S002", [_store_change("S002", "S002-L1-1", 1_760_000_000_001)])
    head = hq.head()
    s2_changes, through = hq.changes_for_store("S002", start + 1, 1000)
    assert through == head
    assert {c.entity for c in s2_changes} == {"sale", "purchase_summary"}
    assert [c.fields["ticket"] for c in s2_changes if c.entity == "sale"] == ["S002-L1-1"]
    summary = [c for c in s2_changes if c.entity == "purchase_summary"]
    assert [p["ticket"] for p in json.loads(summary[0].fields["purchases"])] == ["S001-L1-1"]
    _, rows = hq.replica.export_rows("sale", only={"store": "S002"})
    assert len(rows) == 1
    # A page cut at its limit covers up to its last change; the next one goes on from there.
    first_page, first_through = hq.changes_for_store("S001", start + 1, 1)
    assert first_through == first_page[-1].seq

    edge = EdgeDatabase(tmp_path / "S002.db", "S002")
    edge.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)", (str(start),))
    assert edge.apply_down(s2_changes, start + 1, through)
    assert edge.last_seq == head
    assert [h["ticket"] for h in purchase_history(edge.conn, ann["id"])] == ["S001-L1-1"]
    assert not edge.apply_down([], head + 5, head + 6)  # a range past what it has: a gap
    assert edge.last_seq == head
    hq.close()
    edge.close()


def test_an_hq_log_from_before_routes_gets_its_sales_audience(tmp_path):
    hq = HQDatabase(tmp_path / "hq.db", CodeFormat())
    hq.add_store("S001")
    hq.apply_store_changes("S001", [_store_change("S001", "S001-L1-7", 1_760_000_000_000)])
    hq.conn.execute("UPDATE changes SET audience = ''")  # as the log was
    hq.conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm008_change_audience' AND migration_set = 'lanehub.hq'")
    hq.conn.execute("ALTER TABLE changes DROP COLUMN audience")
    hq.close()
    hq = HQDatabase(tmp_path / "hq.db", CodeFormat())
    assert [tuple(r) for r in db_query(tmp_path / "hq.db", "SELECT entity, audience FROM changes")] == [("sale", "S001")]
    hq.close()


def test_an_erased_customer_s_summary_is_emptied_in_every_store(hq_target, tmp_path):
    from hq.gdpr import erase_customer

    hq = HQDatabase(hq_target, CodeFormat())
    hq.add_store("S001")
    ann = hq.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t")
    hq.apply_store_changes("S001", [_store_change("S001", "S001-L1-1", 1_760_000_000_000, ann["id"])])
    assert json.loads(hq.replica.get("purchase_summary", ann["id"])["purchases"])[0]["ticket"] == "S001-L1-1"
    before = hq.head()
    erase_customer(hq, ann["id"], "dpo")
    assert hq.replica.get("purchase_summary", ann["id"])["purchases"] == "[]"
    emptied = [c for c in hq.changes_since(before + 1, 100) if c.entity == "purchase_summary"]
    assert [c.fields for c in emptied] == [{"purchases": "[]"}]
    assert hq.changes_for_store("S002", before + 1, 100)[0]  # it goes to every store
    hq.close()


def test_hq_answers_an_edge_from_before_routes_with_every_change_and_a_routed_one_with_its_own(tmp_path):
    from hq.config import load_config
    from hq.service import HQService
    from lanehub.protocol.sync import SyncRequest
    from lanehub.runtime.config import dump_toml

    path = tmp_path / "hq.toml"
    path.write_text(dump_toml({"hq": {"db": str(tmp_path / "hq.db")}}))
    hq = HQDatabase(tmp_path / "hq.db", CodeFormat())
    for store in ("S001", "S002"):
        hq.add_store(store)
    hq.apply_store_changes("S001", [_store_change("S001", "S001-L1-1", 1_760_000_000_000)])
    service = HQService(load_config(path))
    old = service._answer(hq, "S002", SyncRequest(op="catchup", from_seq=1, limit=100))
    new = service._answer(hq, "S002", SyncRequest(op="catchup", from_seq=1, limit=100, routed=True))
    assert [c["entity"] for c in old.changes].count("sale") == 1 and old.through == 0  # as it always was
    assert [c["entity"] for c in new.changes].count("sale") == 0 and new.through == hq.head() and not new.more
    hq.close()
