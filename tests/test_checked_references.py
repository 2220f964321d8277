"""A customer's rate is an existing rate code wherever a customer is written from
outside (pages at HQ and in the store, the API, the CLI, imports, batches, the
lane): an unknown one is refused with a clear message next to the field or in
one line, an existing one and an empty one (no rate) are accepted, and every
customer form offers the rates as a choice."""

from __future__ import annotations

import csv
import json
import re

import pytest
from click.testing import CliRunner
from helpers import db_query, edge_db, lane_request
from shop import LANES
from web_sites import csrf, login

from hq.batches.writes import Batches
from hq.catalogue import HQCatalogue
from hq.config import load_config
from hq.db import HQDatabase
from hq.imports.engine import ImportAborted, import_file
from hq.users import HQUsers
from lanehub.cli.main import main
from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import ValidationError
from lanehub.runtime.config import dump_toml

REFUSED = "BOGUS is not a rate (rates: GOLD; or none)"


@pytest.fixture
def rated_sites(sites):
    """Both sites with rate GOLD, replicated to the store as HQ's log would bring it."""
    apps, hq, edge = sites
    HQCatalogue(hq).put_rate("gold", {"name": "Gold members"}, "t")
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    return apps, hq, edge


def admin_client(app):
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


# --- pages ---------------------------------------------------------------------------------

@pytest.mark.parametrize("site", ["hq", "store"])
def test_the_new_customer_page_refuses_an_unknown_rate_next_to_the_field_and_keeps_what_was_typed(rated_sites, site):
    apps, hq, edge = rated_sites
    db = hq if site == "hq" else edge
    client = admin_client(apps[site])
    before = db.replica.count("customer")
    token = csrf(client, "/customers/new")
    page = client.post("/customers/new", data={"csrf_token": token, "first_name": "Rita", "last_name": "Bogus",
                                               "rate": "BOGUS"})
    text = page.get_data(as_text=True)
    assert page.status_code == 422
    assert re.search(r'<span class="error" id="err-rate">Rate ' + re.escape(REFUSED) + "</span>", text), text
    assert 'value="Rita"' in text and db.replica.count("customer") == before  # nothing lost, nothing written


@pytest.mark.parametrize("site", ["hq", "store"])
@pytest.mark.parametrize("rate, stored", [("GOLD", "GOLD"), ("gold", "GOLD"), ("", "")])
def test_the_new_customer_page_accepts_an_existing_rate_or_none(rated_sites, site, rate, stored):
    apps, hq, edge = rated_sites
    db = hq if site == "hq" else edge
    client = admin_client(apps[site])
    token = csrf(client, "/customers/new")
    page = client.post("/customers/new", data={"csrf_token": token, "first_name": "Goldie", "last_name": "Rated",
                                               "rate": rate})
    assert page.status_code == 302, page.get_data(as_text=True)
    made = db.replica.get("customer", page.headers["Location"].rsplit("/", 1)[1])
    assert made["rate"] == stored


@pytest.mark.parametrize("site", ["hq", "store"])
def test_the_edit_page_refuses_an_unknown_rate_and_accepts_an_existing_one(rated_sites, site):
    apps, hq, edge = rated_sites
    db = hq if site == "hq" else edge
    client = admin_client(apps[site])
    record = db.find_customer("CUST-00001")
    path = f"/customers/{record['id']}/edit"
    token = csrf(client, path)
    form = {"csrf_token": token, "first_name": record["first_name"], "last_name": record["last_name"]}
    refused = client.post(path, data=form | {"rate": "BOGUS"})
    assert refused.status_code == 422 and f"Rate {REFUSED}" in refused.get_data(as_text=True)
    assert db.find_customer("CUST-00001")["rate"] == ""
    assert client.post(path, data=form | {"rate": "GOLD"}).status_code == 302
    assert db.find_customer("CUST-00001")["rate"] == "GOLD"
    assert client.post(path, data=form | {"rate": ""}).status_code == 302
    assert db.find_customer("CUST-00001")["rate"] == ""


@pytest.mark.parametrize("site", ["hq", "store"])
@pytest.mark.parametrize("page", ["new", "edit"])
def test_every_customer_form_offers_the_rates_as_a_choice_with_none(rated_sites, site, page):
    apps, hq, edge = rated_sites
    client = admin_client(apps[site])
    path = "/customers/new" if page == "new" else f"/customers/{hq.find_customer('CUST-00001')['id']}/edit"
    text = client.get(path).get_data(as_text=True)
    select = re.search(r'<select name="rate"[^>]*>(.*?)</select>', text, re.S)
    assert select, "the rate is a <select>"
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))
    assert options == [("", "none"), ("GOLD", "GOLD — Gold members")]
    assert not re.search(r'<input name="rate"', text)


def test_a_customer_whose_rate_is_not_a_rate_stays_editable_and_sees_it_flagged(rated_sites):
    # A rate written before rates were checked: the form shows it, and saving other fields still works.
    apps, hq, edge = rated_sites
    record = hq.find_customer("CUST-00001")
    hq.write("customer", record["id"], {"rate": "OLD"}, "t")
    client = admin_client(apps["hq"])
    path = f"/customers/{record['id']}/edit"
    text = client.get(path).get_data(as_text=True)
    assert '<option value="OLD" selected>OLD (not a rate: choose another)</option>' in text
    saved = client.post(path, data={"csrf_token": csrf(client, path), "first_name": "Ann", "last_name": "Other",
                                    "rate": "OLD"})
    assert saved.status_code == 302 and hq.find_customer("CUST-00001")["last_name"] == "Other"


# --- the API -------------------------------------------------------------------------------

@pytest.mark.parametrize("site", ["hq", "store"])
def test_the_api_refuses_an_unknown_rate_in_the_field_map_and_accepts_an_existing_or_empty_one(rated_sites, site):
    apps, hq, edge = rated_sites
    token = HQUsers(hq).new_token("admin", "t")
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    client = apps[site].test_client()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"first_name": "Api", "last_name": "Rated"}
    refused = client.post("/api/v1/customers", headers=headers, json=body | {"rate": "bogus"})
    assert refused.status_code == 422 and refused.get_json()["fields"] == {"rate": REFUSED}
    made = client.post("/api/v1/customers", headers=headers, json=body | {"rate": "gold"})
    assert made.status_code == 201 and made.get_json()["rate"] == "GOLD"
    ref = made.get_json()["id"]
    patched = client.patch(f"/api/v1/customers/{ref}", headers=headers, json={"rate": "BOGUS"})
    assert patched.status_code == 422 and patched.get_json()["fields"] == {"rate": REFUSED}
    cleared = client.patch(f"/api/v1/customers/{ref}", headers=headers, json={"rate": ""})
    assert cleared.status_code == 200 and cleared.get_json()["rate"] == ""


# --- the CLI -------------------------------------------------------------------------------

@pytest.fixture
def hq_config(tmp_path):
    path = tmp_path / "hq.toml"
    path.write_text('[hq]\ndb = "hq.db"\n')
    db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    HQCatalogue(db).put_rate("GOLD", {"name": "Gold"}, "t")
    db.close()
    return path


def hq_cli(config, *args):
    return CliRunner().invoke(main, ["hq", *args, "-c", str(config)], catch_exceptions=False)


def test_cli_customers_add_and_edit_refuse_an_unknown_rate_in_one_line(hq_config):
    added = hq_cli(hq_config, "customers", "add", "--first-name", "Cli", "--last-name", "Bogus", "--rate", "BOGUS")
    assert added.exit_code == 1 and added.stderr.strip().splitlines() == [f"error: rate {REFUSED}"]
    made = hq_cli(hq_config, "customers", "add", "--first-name", "Cli", "--last-name", "Gold", "--rate", "gold")
    assert made.exit_code == 0 and json.loads(made.stdout)["rate"] == "GOLD"
    code = json.loads(made.stdout)["code"]
    edited = hq_cli(hq_config, "customers", "edit", code, "--rate", "BOGUS")
    assert edited.exit_code == 1 and edited.stderr.strip().splitlines() == [f"error: rate {REFUSED}"]
    shown = json.loads(hq_cli(hq_config, "customers", "show", code).stdout)
    assert shown["rate"] == "GOLD"  # the refused edit changed nothing
    cleared = hq_cli(hq_config, "customers", "edit", code, "--rate", "")
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["rate"] == ""


def test_cli_rates_assign_uses_the_same_wording(hq_config):
    made = json.loads(hq_cli(hq_config, "customers", "add", "--first-name", "As", "--last-name", "Signed").stdout)
    refused = hq_cli(hq_config, "rates", "assign", "BOGUS", made["code"])
    assert refused.exit_code == 1 and refused.stderr.strip() == f"error: rate {REFUSED}"


# --- imports and batches -------------------------------------------------------------------

def test_an_import_refuses_a_row_with_an_unknown_rate_and_takes_existing_or_empty_ones(tmp_path):
    db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    HQCatalogue(db).put_rate("GOLD", {"name": "Gold"}, "t")
    path = tmp_path / "hq.toml"
    path.write_text(dump_toml({"hq": {"db": str(tmp_path / "hq.db")}, "import": {"customers": {
        "source": "pos", "columns": {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name", "RATE": "rate"},
        "owned": ["first_name", "last_name"]}}}))
    rows = [{"NUM": "1", "NAME": "Ana", "SURNAME": "Gold", "RATE": "gold"},
            {"NUM": "2", "NAME": "Bea", "SURNAME": "None", "RATE": ""},
            {"NUM": "3", "NAME": "Cai", "SURNAME": "Bogus", "RATE": "BOGUS"}]
    source = tmp_path / "pos.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ImportAborted) as caught:
        import_file(db, "customers", source, "import", config=load_config(path))
    assert [(key, errors) for _, key, errors in caught.value.plan.invalid] == [("3", {"rate": REFUSED})]
    assert db.replica.count("customer") == 0  # all or nothing
    rows.pop()
    with open(source, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_file(db, "customers", source, "import", config=load_config(path))
    assert {r["first_name"]: r["rate"] for r in db.conn.execute("SELECT first_name, rate FROM customers")} == {
        "Ana": "GOLD", "Bea": ""}
    db.close()


def test_batches_refuse_an_unknown_rate_and_take_existing_or_empty_ones(tmp_path):
    db = HQDatabase(tmp_path / "hq.db", CodeFormat())
    HQCatalogue(db).put_rate("GOLD", {"name": "Gold"}, "t")
    batches = Batches(db)
    batch_id = batches.new("new_customers", "alice")
    batches.load_csv(batch_id, "first_name,last_name,rate\nAna,Gold,gold\nBea,None,\nCai,Bogus,BOGUS\n")
    assert [row["errors"] for row in batches.review(batch_id)] == [{}, {}, {"rate": REFUSED}]
    with pytest.raises(ValidationError) as refused:
        batches.new("customer_updates", "alice", action="set_rate", value="bogus")
    assert refused.value.errors == {"value": REFUSED}
    db.close()


# --- the lane ------------------------------------------------------------------------------

def test_a_lane_create_refuses_an_unknown_rate_with_the_field_and_takes_an_existing_or_empty_one(shop, mqtt):
    client = mqtt(shop.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    lane = f"L{next(LANES)}"

    def create(name: str, rate: str) -> dict:
        return lane_request(client, "S001", lane, {"op": "create", "id": f"rate-{name}",
                                                   "customer": {"first_name": name, "last_name": "Lane", "rate": rate}})

    refused = create("Bogus", "BOGUS")
    assert not refused["ok"] and refused["errors"] == {"rate": "BOGUS is not a rate (rates: VIP; or none)"}
    assert "BOGUS is not a rate" in refused["error"]
    vip = create("Vip", "vip")
    assert vip["ok"], vip
    none = create("None", "")
    assert none["ok"], none
    stored = {r["first_name"]: r["rate"] for r in db_query(edge_db(shop, "S001"),
                                                              "SELECT first_name, rate FROM customers WHERE last_name = 'Lane'")}
    assert stored == {"Vip": "VIP", "None": ""}  # the refused one was never written
