"""Declared extra customer fields: declared at HQ, edited on every site and
every path (pages, API, CLI), replicated value by value, owned by an import
when it says so, erased with the customer."""

from __future__ import annotations

import json
import uuid

import pytest
from helpers import customer_by, db_query, edge_db, hq_db, wait_until
from test_api import call
from test_importing import write_config, write_csv
from web_sites import csrf, login

from edge.db import EdgeDatabase
from hq.config import load_config
from hq.db import HQDatabase
from hq.fields import declare_extra_field, sync_field_rules
from hq.gdpr import erase_customer, export_customer
from hq.imports.engine import ImportAborted, ImportSpec, run_import
from hq.imports.sources import CsvSource
from hq.imports.targets import TARGETS
from hq.users import HQUsers
from lanehub.domain.codes import CodeFormat
from lanehub.domain.extra_fields import value_key
from lanehub.domain.model import ValidationError


@pytest.fixture
def hq(hq_target, tmp_path):
    db = HQDatabase(hq_target, CodeFormat())
    declare_extra_field(db, "loyalty_tier", "Loyalty tier", "t")
    declare_extra_field(db, "birthday", "Birthday", "t")
    yield db
    db.close()


def extras(db, customer_id):
    return {r["name"]: r["value"] for r in db.conn.execute(
        "SELECT name, value FROM customer_extras WHERE customer_id = ?", (customer_id,))}


def test_declared_extra_fields_are_set_on_create_and_update_and_undeclared_ones_refused(hq):
    ann = hq.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t", extra={"loyalty_tier": " gold "})
    assert extras(hq, ann["id"]) == {"loyalty_tier": "gold"}
    before = hq.head()
    hq.update_customer(ann["id"], {}, "t", extra={"birthday": "1990-05-01", "loyalty_tier": "gold"})
    assert extras(hq, ann["id"]) == {"loyalty_tier": "gold", "birthday": "1990-05-01"}
    # Every value the edit sets is written, the unchanged one too: it must win over an
    # older edit made elsewhere (tests/test_last_writer_wins.py).
    assert sorted(c.entity for c in hq.changes_since(before + 1)) == ["customer", "customer_extra", "customer_extra"]
    with pytest.raises(ValidationError) as caught:
        hq.update_customer(ann["id"], {"city": "Vigo"}, "t", extra={"shoe_size": "42", "birthday": "x" * 501})
    assert caught.value.errors == {"extra.shoe_size": "is not a declared extra field",
                                   "extra.birthday": "is too long (max 500 characters)"}
    assert hq.replica.get("customer", ann["id"])["city"] == ""  # nothing of a refused edit is written
    declare_extra_field(hq, "birthday", "", "t", active=False)
    with pytest.raises(ValidationError, match="extra.birthday is not a declared extra field"):
        hq.update_customer(ann["id"], {}, "t", extra={"birthday": "1990-05-02"})
    assert extras(hq, ann["id"])["birthday"] == "1990-05-01"  # withdrawn: kept, not editable
    with pytest.raises(ValidationError, match="name must be 1-32 lower-case"):
        declare_extra_field(hq, "Shoe Size", "Shoe size", "t")


def test_extra_fields_in_the_pages_and_the_api_of_both_sites(sites):
    apps, hq, edge = sites
    declare_extra_field(hq, "loyalty_tier", "Loyalty tier", "t")
    token = HQUsers(hq).new_token("admin", "t")
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    code = hq.conn.execute("SELECT code FROM customers ORDER BY code LIMIT 1").fetchone()[0]
    for site, app in apps.items():
        listed = call(app, "GET", "/api/v1/extra-fields", token).get_json()
        assert listed["extra_fields"] == [{"name": "loyalty_tier", "label": "Loyalty tier"}]
        done = call(app, "PATCH", f"/api/v1/customers/{code}", token, {"extra": {"loyalty_tier": f"{site}-gold"}})
        assert done.status_code == 200, done.get_json()
        assert call(app, "GET", f"/api/v1/customers/{code}", token).get_json()["extra"] == {"loyalty_tier": f"{site}-gold"}
        bad = call(app, "PATCH", f"/api/v1/customers/{code}", token, {"extra": {"nope": "1"}})
        assert bad.status_code == 422 and bad.get_json()["fields"] == {"extra.nope": "is not a declared extra field"}
        client = app.test_client()
        login(client, "admin")
        form = client.get(f"/customers/{code}/edit").get_data(as_text=True)
        assert 'name="extra.loyalty_tier"' in form and f'value="{site}-gold"' in form
        token_ = csrf(client, f"/customers/{code}/edit")
        saved = client.post(f"/customers/{code}/edit", data={
            "csrf_token": token_, "first_name": "Ann", "last_name": "<script>alert(1)</script>",
            "payment_status": "valid", "status": "open", "extra.loyalty_tier": "<b>platinum</b>"})
        assert saved.status_code == 302, site
        page = client.get(f"/customers/{code}").get_data(as_text=True)
        assert "Loyalty tier" in page and "&lt;b&gt;platinum&lt;/b&gt;" in page and "<b>platinum" not in page


def test_offline_stores_editing_different_extra_fields_both_keep_their_edit(make_chain):
    chain = make_chain()
    chain.hq_cli("extra-fields", "add", "loyalty_tier", "Loyalty tier")
    chain.hq_cli("extra-fields", "add", "birthday", "Birthday")
    ann = json.loads(chain.hq_cli("customers", "add", "--first-name", "Ann", "--last-name", "Lee").stdout)
    for store in chain.stores:
        wait_until(lambda s=store: customer_by(edge_db(chain, s), "id", ann["id"])
                   and db_query(edge_db(chain, s), "SELECT 1 FROM extra_fields WHERE name = 'birthday'"),
                   message=f"customer and declarations at {store}")
    chain.hq_broker.stop()  # both stores offline
    chain.edge_cli("S001", "customers", "edit", ann["code"], "--extra", "loyalty_tier=gold")
    chain.edge_cli("S002", "customers", "edit", ann["code"], "--extra", "birthday=1990-05-01")
    chain.hq_broker.start()
    expected = {"loyalty_tier": "gold", "birthday": "1990-05-01"}
    for path in (hq_db(chain), *(edge_db(chain, s) for s in chain.stores)):
        wait_until(lambda p=path: {r["name"]: r["value"] for r in db_query(
            p, "SELECT name, value FROM customer_extras WHERE customer_id = ?", (ann["id"],))} == expected,
            40, message=f"both extra values at {path}")
    shown = json.loads(chain.edge_cli("S001", "customers", "show", ann["code"]).stdout)
    assert shown["extra"] == expected


def test_an_import_can_own_an_extra_field(hq, tmp_path):
    config = load_config(write_config(tmp_path, {"customers": {
        "source": "crm", "columns": {"id": "external_id", "first": "first_name", "last": "last_name",
                                     "tier": "extra.loyalty_tier"}, "owned": ["extra.loyalty_tier"]}}))
    target = TARGETS["customers"](hq)
    spec = ImportSpec.from_config(config, "customers", target)
    rows = [{"id": "7", "first": "Ann", "last": "Lee", "tier": "silver"}]
    plan = run_import(target, spec, CsvSource(write_csv(tmp_path / "crm.csv", rows, ",")), "import:crm")
    sync_field_rules(hq, spec, target, "t")
    ann = hq.conn.execute("SELECT id FROM customers WHERE external_id = '7'").fetchone()[0]
    assert plan.count("create") == 1 and extras(hq, ann) == {"loyalty_tier": "silver"}
    again = run_import(target, spec, CsvSource(write_csv(tmp_path / "crm.csv", [dict(rows[0], tier="gold", first="X")],
                                                         ",")), "import:crm")
    assert [c.describe() for c in again.changes] == ["update 7: extra.loyalty_tier: 'silver' -> 'gold'"]  # names seed only
    with pytest.raises(ValidationError, match="extra.loyalty_tier comes from crm"):
        hq.update_customer(ann, {}, "clerk", extra={"loyalty_tier": "platinum"})
    hq.update_customer(ann, {}, "clerk", extra={"birthday": "1990-05-01"})  # not owned: lanehub's
    edge = EdgeDatabase(tmp_path / "S001.db", "S001")
    edge.apply_down(hq.changes_since(1, 10_000))
    with pytest.raises(ValidationError, match="extra.loyalty_tier comes from crm"):
        edge.update_customer(ann, {}, "till", extra={"loyalty_tier": "platinum"})
    hq.add_store("S001")
    forged = {"id": str(uuid.uuid4()), "entity": "customer_extra", "key": value_key(ann, "loyalty_tier"),
              "origin": "S001", "hlc": hq.clock.now(), "by": "till", "fields": {"value": "platinum"}}
    wrong_key = {"id": str(uuid.uuid4()), "entity": "customer_extra", "key": str(uuid.uuid4()), "origin": "S001",
                 "hlc": hq.clock.now(), "by": "till", "fields": {"customer_id": ann, "name": "birthday", "value": "1"}}
    outcomes = hq.apply_store_changes("S001", [forged, wrong_key])
    assert [o.reason for o in outcomes] == ["extra.loyalty_tier comes from crm; change it there",
                                            "an extra value's key must be made from its customer and name"]


def test_a_gdpr_erasure_blanks_extra_fields_and_an_import_does_not_bring_the_customer_back(hq, tmp_path):
    config = load_config(write_config(tmp_path, {"customers": {
        "source": "pos", "columns": {"id": "external_id", "first": "first_name", "last": "last_name"}}}))
    target = TARGETS["customers"](hq)
    spec = ImportSpec.from_config(config, "customers", target)
    source = CsvSource(write_csv(tmp_path / "pos.csv", [{"id": "7", "first": "Ann", "last": "Lee"}], ","))
    run_import(target, spec, source, "import:pos")
    ann = hq.conn.execute("SELECT id FROM customers WHERE external_id = '7'").fetchone()[0]
    hq.update_customer(ann, {}, "t", extra={"birthday": "1990-05-01"})
    assert export_customer(hq, ann)["extra"] == {"birthday": "1990-05-01"}
    erase_customer(hq, ann, "dpo")
    assert extras(hq, ann) == {"birthday": ""}
    with pytest.raises(ImportAborted) as caught:
        run_import(target, spec, source, "import:pos")
    assert caught.value.plan.invalid[0][2] == {"external_id": "7 was erased in lanehub (GDPR); erase it in the source too"}


def test_a_merge_moves_coupons_headship_and_missing_extra_values_to_the_survivor(hq):
    from hq.coupons import HQCoupons
    from hq.merge import merge_customers

    keep = hq.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t", extra={"loyalty_tier": "gold"})
    other = hq.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t",
                               extra={"loyalty_tier": "silver", "birthday": "1990-05-01"})
    coupons = HQCoupons(hq)
    coupon = coupons.issue("amount", "5", "t", customer=other["code"])
    household = coupons.create_household("Lee family", other["code"], "t")
    merge_customers(hq, keep["id"], other["id"], "clerk")
    assert hq.replica.get("coupon", coupon["id"])["customer_id"] == keep["id"]
    assert hq.replica.get("household", household["id"])["head_customer_id"] == keep["id"]
    assert extras(hq, keep["id"]) == {"loyalty_tier": "gold", "birthday": "1990-05-01"}  # the survivor's own value wins


def test_a_new_customers_batch_carries_declared_extra_fields(hq, tmp_path):
    from hq.batches.writes import Batches

    batches = Batches(hq)
    batch = batches.new("new_customers", "t")
    batches.load_csv(batch, "first_name;last_name;extra.loyalty_tier\nAnn;Lee;gold\nBo;Ek;" + "x" * 501 + "\n")
    rows = batches.review(batch)
    assert rows[1]["errors"] == {"extra.loyalty_tier": "is too long (max 500 characters)"}
    batches.fix(batch, 2, {"extra.loyalty_tier": "silver"})
    batches.execute(batch, "t")
    codes = [row["result"] for row in batches.review(batch)]
    assert [extras(hq, hq.find_customer(code)["id"]) for code in codes] == [{"loyalty_tier": "gold"},
                                                                              {"loyalty_tier": "silver"}]
    with pytest.raises(ValidationError, match="unknown column"):
        batches.load_csv(batches.new("new_customers", "t"), "first_name,last_name,extra.shoe_size\nA,B,42\n")


def test_extra_fields_are_declared_and_withdrawn_on_the_fields_page(sites):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, "/fields/")
    bad = client.post("/fields/", data={"csrf_token": token, "name": "Shoe Size", "label": "Shoe size"})
    assert bad.status_code == 422 and 'id="err-name"' in bad.get_data(as_text=True)
    assert 'value="Shoe Size"' in bad.get_data(as_text=True)  # nothing typed is lost
    done = client.post("/fields/", data={"csrf_token": token, "name": "shoe_size", "label": "Shoe size"},
                       follow_redirects=True)
    assert "Extra field shoe_size (Shoe size) is shown on every customer page." in done.get_data(as_text=True)
    assert tuple(hq.conn.execute("SELECT label, active FROM extra_fields WHERE name = 'shoe_size'").fetchone()) == ("Shoe size", 1)
    client.post("/fields/", data={"csrf_token": token, "name": "shoe_size", "action": "withdraw"})
    assert tuple(hq.conn.execute("SELECT label, active FROM extra_fields WHERE name = 'shoe_size'").fetchone()) == ("Shoe size", 0)
    viewer = apps["hq"].test_client()
    login(viewer, "viewer")
    assert "Show again</button>" not in viewer.get("/fields/").get_data(as_text=True)
    assert viewer.post("/fields/", data={"csrf_token": csrf(viewer, "/fields/"), "name": "x", "label": "X"}).status_code == 403
