"""Several addresses per customer (lanehub/domain/addresses.py, address_edits.py):
added, preferred and removed on both sites' customer pages with errors beside
their fields, replicated HQ -> store and store -> HQ like every record, never
holding a payment card number, exported and erased with the customer, copied
to the survivor of a merge, and printed on receipts as the invoice address
where the store asks for it."""

from __future__ import annotations

import re

import pytest
from web_sites import csrf, login, sites  # noqa: F401  (the fixture)

from hq.gdpr import erase_customer, export_customer
from hq.merge import merge_customers
from lanehub.domain.address_edits import add_address, prefer_address, remove_address
from lanehub.domain.addresses import address_for, addresses_of
from lanehub.domain.model import ValidationError
from lanehub.protocol.lane import Receipt, ReceiptCustomer, ReceiptStore
from lanehub.receipts.layout import text_lines

BILLING = {"kind": "billing", "street": "Calle Mayor 1", "city": "Madrid", "postcode": "28013", "country": "Spain"}


def ann(hq):
    return hq.conn.execute("SELECT * FROM customers WHERE first_name = 'Ann'").fetchone()


def test_an_address_added_on_the_hq_page_is_shown_and_reaches_the_store(sites):  # noqa: F811
    apps, hq, edge = sites
    customer = ann(hq)
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, f"/customers/{customer['id']}")
    response = client.post(f"/customers/{customer['id']}/addresses",
                           data={"csrf_token": token, **BILLING, "label": "office", "preferred": "1"})
    assert response.status_code == 302
    page = client.get(f"/customers/{customer['id']}").get_data(as_text=True)
    assert "Billing — office" in page and "Calle Mayor 1, 28013 Madrid, Spain" in page and "(preferred)" in page
    edge.apply_down(hq.changes_since(edge.last_seq + 1, 10_000))
    [at_store] = addresses_of(edge.conn, customer["id"])
    assert (at_store["kind"], at_store["label"], at_store["line"], at_store["preferred"]) == (
        "billing", "office", "Calle Mayor 1, 28013 Madrid, Spain", 1)
    store = apps["store"].test_client()
    login(store, "admin")
    assert "Calle Mayor 1, 28013 Madrid, Spain" in store.get(f"/customers/{customer['id']}").get_data(as_text=True)


def test_an_address_added_at_the_store_goes_to_hq_through_the_outbox(sites):  # noqa: F811
    apps, hq, edge = sites
    customer = ann(hq)
    store = apps["store"].test_client()
    login(store, "admin")
    token = csrf(store, f"/customers/{customer['id']}")
    assert store.post(f"/customers/{customer['id']}/addresses",
                      data={"csrf_token": token, "kind": "delivery", "street": "Polígono 7", "city": "Getafe"}).status_code == 302
    changes = [c for c in edge.outbox_due(0) if c["entity"] == "address"]
    assert len(changes) == 1
    outcomes = hq.apply_store_changes("S001", changes)
    assert [o.ok for o in outcomes] == [True], [o.reason for o in outcomes]
    assert [a["line"] for a in addresses_of(hq.conn, customer["id"])] == ["Polígono 7, Getafe"]


@pytest.mark.parametrize("fields, field, message", [
    ({"kind": "billing"}, "street", "give at least a street, a city or a postcode"),
    ({"kind": "home", "street": "x"}, "kind", "must be one of billing, delivery, other"),
    ({"kind": "billing", "street": "4111 1111 1111 1111"}, "street", "payment card"),
])
def test_a_bad_address_is_refused_beside_its_field_and_nothing_is_written(sites, fields, field, message):  # noqa: F811
    apps, hq, _ = sites
    customer = ann(hq)
    client = apps["hq"].test_client()
    login(client, "admin")
    token = csrf(client, f"/customers/{customer['id']}")
    response = client.post(f"/customers/{customer['id']}/addresses", data={"csrf_token": token, **fields})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    found = re.search(rf'<span class="error"[^>]*>[^<]*{re.escape(message)}', page)
    assert found, page[-3000:]
    assert "4111 1111 1111 1111" not in page and "4111111111111111" not in page  # not even in the form again
    assert addresses_of(hq.conn, customer["id"], include_inactive=True) == []


def test_one_preferred_address_per_kind_and_a_removed_one_stays_as_history(sites):  # noqa: F811
    _, hq, _ = sites
    customer = ann(hq)
    first = add_address(hq, customer["id"], BILLING | {"preferred": True}, "t")
    second = add_address(hq, customer["id"], {"kind": "billing", "street": "Gran Vía 2", "preferred": True}, "t")
    delivery = add_address(hq, customer["id"], {"kind": "delivery", "street": "Almacén 3", "preferred": True}, "t")
    preferred = {a["street"] for a in addresses_of(hq.conn, customer["id"]) if a["preferred"]}
    assert preferred == {"Gran Vía 2", "Almacén 3"}  # one per kind: the first billing one is not any more
    prefer_address(hq, first["id"], "t")
    assert address_for(hq.conn, dict(customer), "billing") == "Calle Mayor 1, 28013 Madrid, Spain"
    remove_address(hq, first["id"], "t")
    assert address_for(hq.conn, dict(customer), "billing") == "Gran Vía 2"
    assert {a["id"] for a in addresses_of(hq.conn, customer["id"])} == {second["id"], delivery["id"]}
    assert len(addresses_of(hq.conn, customer["id"], include_inactive=True)) == 3
    with pytest.raises(ValidationError):
        remove_address(hq, first["id"], "t")  # already removed


def test_without_a_billing_address_the_invoice_address_is_the_main_one(sites):  # noqa: F811
    _, hq, _ = sites
    customer = hq.create_customer({"first_name": "Bo", "last_name": "Main", "street": "Rúa Nova 5", "city": "Lugo",
                                   "postcode": "27001"}, "t")
    add_address(hq, customer["id"], {"kind": "delivery", "street": "Elsewhere 9"}, "t")
    assert address_for(hq.conn, customer, "billing") == "Rúa Nova 5, 27001 Lugo"


def test_export_includes_addresses_and_erase_blanks_them(sites):  # noqa: F811
    _, hq, _ = sites
    customer = ann(hq)
    add_address(hq, customer["id"], BILLING, "t")
    exported = export_customer(hq, customer["id"])
    assert [a["street"] for a in exported["addresses"]] == ["Calle Mayor 1"]
    erase_customer(hq, customer["id"], "t")
    [erased] = addresses_of(hq.conn, customer["id"], include_inactive=True)
    assert (erased["street"], erased["city"], erased["postcode"], erased["active"]) == ("", "", "", 0)


def test_a_merge_gives_the_survivor_a_copy_of_the_others_addresses(sites):  # noqa: F811
    _, hq, _ = sites
    keep = ann(hq)
    twin = hq.create_customer({"first_name": "Ann", "last_name": "Twin"}, "t")
    add_address(hq, twin["id"], BILLING | {"preferred": True}, "t")
    merge_customers(hq, keep["id"], twin["id"], "t")
    assert [a["line"] for a in addresses_of(hq.conn, keep["id"])] == ["Calle Mayor 1, 28013 Madrid, Spain"]
    assert addresses_of(hq.conn, twin["id"]) == []


def test_the_receipt_prints_the_invoice_address_wrapped_to_the_paper():
    receipt = Receipt(store=ReceiptStore(id="S001", name="Shop"), ticket="S001-L1-1", lane="L1",
                      closed_at="2026-12-02T10:00:00+00:00", total="1.00", subtotal="1.00",
                      customer=ReceiptCustomer(code="CUST-00001", name="Ann Shopper",
                                               address="Calle Mayor 1, 28013 Madrid, Spain (3rd floor, door B)"))
    lines = text_lines(receipt, 32)
    at = next(i for i, text in enumerate(lines) if text.startswith("Address: "))
    assert lines[at] == "Address: Calle Mayor 1, 28013" and lines[at + 1].startswith("  Madrid")
    assert all(len(text) <= 32 for text in lines)


# --- addresses as columns: imports and batches (lanehub/domain/address_columns.py) ----------

POS_ADDRESSES = {
    "source": "pos",
    "columns": {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name",
                "BILL_STREET": "address.billing.street", "BILL_CITY": "address.billing.city",
                "SHIP_STREET": "address.delivery.street", "SHIP_POSTCODE": "address.delivery.postcode"},
    "owned": ["first_name", "last_name", "address.billing.street", "address.billing.city",
              "address.delivery.street", "address.delivery.postcode"],
}


def _import_addresses(tmp_path, db, rows):
    import csv

    from hq.config import load_config
    from hq.imports.engine import ImportSpec, run_import
    from hq.imports.sources import CsvSource
    from hq.imports.targets import TARGETS
    from lanehub.runtime.config import dump_toml

    config_path = tmp_path / "hq.toml"
    config_path.write_text(dump_toml({"hq": {"db": str(tmp_path / "hq.db")}, "import": {"customers": POS_ADDRESSES}}))
    target = TARGETS["customers"](db)
    spec = ImportSpec.from_config(load_config(config_path), "customers", target)
    with open(tmp_path / "pos.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    return run_import(target, spec, CsvSource(tmp_path / "pos.csv"), "import:pos")


@pytest.fixture
def hq_db(hq_target, tmp_path):
    from hq.db import HQDatabase
    from lanehub.domain.codes import CodeFormat

    db = HQDatabase(hq_target, CodeFormat())
    yield db
    db.close()


def test_an_import_maps_columns_to_billing_and_delivery_addresses_and_updates_them_in_place(tmp_path, hq_db):
    row = {"NUM": "7", "NAME": "Eva", "SURNAME": "Ruiz", "BILL_STREET": "Gran Vía 2", "BILL_CITY": "Madrid",
           "SHIP_STREET": "Nave 4", "SHIP_POSTCODE": "28906"}
    plan = _import_addresses(tmp_path, hq_db, [row])
    assert plan.count("create") == 1
    customer = hq_db.conn.execute("SELECT * FROM customers WHERE external_id = '7'").fetchone()
    addresses = {a["kind"]: a for a in addresses_of(hq_db.conn, customer["id"])}
    assert (addresses["billing"]["line"], addresses["billing"]["preferred"]) == ("Gran Vía 2, Madrid", 1)
    assert (addresses["delivery"]["line"], addresses["delivery"]["preferred"]) == ("Nave 4, 28906", 1)

    assert _import_addresses(tmp_path, hq_db, [row]).count("update") == 0  # nothing changed: nothing written
    moved = _import_addresses(tmp_path, hq_db, [row | {"BILL_CITY": "Alcalá", "SHIP_STREET": ""}])
    assert moved.count("update") == 1
    after = {a["kind"]: a for a in addresses_of(hq_db.conn, customer["id"])}
    assert after["billing"]["id"] == addresses["billing"]["id"]  # the same address, changed in place
    assert after["billing"]["line"] == "Gran Vía 2, Alcalá"
    assert after["delivery"]["line"] == "Nave 4, 28906"  # an empty cell blanks nothing
    assert len(addresses_of(hq_db.conn, customer["id"])) == 2


def test_an_import_refuses_a_card_number_in_an_address_column_naming_the_column(tmp_path, hq_db):
    from hq.imports.engine import ImportAborted

    row = {"NUM": "8", "NAME": "Leo", "SURNAME": "Gil", "BILL_STREET": "4111 1111 1111 1111", "BILL_CITY": "Madrid",
           "SHIP_STREET": "", "SHIP_POSTCODE": ""}
    with pytest.raises(ImportAborted) as refused:
        _import_addresses(tmp_path, hq_db, [row])
    [(_, key, errors)] = refused.value.plan.invalid
    assert key == "8" and set(errors) == {"address.billing.street"} and "4111111111111111" not in str(errors)
    assert "411111******1111" in errors["address.billing.street"]  # named masked, never whole
    assert hq_db.conn.execute("SELECT count(*) FROM addresses").fetchone()[0] == 0


def test_a_new_customers_batch_takes_address_columns_checks_them_and_creates_the_addresses(hq_db):
    from hq.batches.writes import Batches

    batches = Batches(hq_db)
    batch_id = batches.new("new_customers", "alice")
    batches.load_csv(batch_id, "first_name,last_name,address.billing.street,address.billing.city,address.delivery.country\n"
                               "Ana,Sol,Calle Luna 3,Toledo,\nBea,Mar,,," + "Atlantis " * 8 + "\n")
    assert [sorted(row["errors"]) for row in batches.review(batch_id)] == [[], ["address.delivery.country"]]
    batches.drop(batch_id, 2)
    batches.execute(batch_id, "alice")
    ana = hq_db.conn.execute("SELECT * FROM customers WHERE first_name = 'Ana'").fetchone()
    [billing] = addresses_of(hq_db.conn, ana["id"])
    assert (billing["kind"], billing["line"], billing["preferred"]) == ("billing", "Calle Luna 3, Toledo", 1)
    assert address_for(hq_db.conn, dict(ana), "billing") == "Calle Luna 3, Toledo"


# --- the CLI (lanehub/cli/addresses.py) ------------------------------------------------------

@pytest.mark.parametrize("site", ["hq", "edge"])
def test_the_cli_adds_lists_prefers_and_removes_addresses_at_both_sites(sites, site, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from lanehub.cli.main import main

    apps, hq, edge = sites
    config = tmp_path / f"{site}.toml"
    config.write_text(f'[hq]\ndb = "{hq.path}"\n' if site == "hq" else '[store]\nid = "S001"\ndb = "S001.db"\n')
    db = hq if site == "hq" else edge
    code = ann(hq)["code"]

    def run(*args, ok=True):
        result = CliRunner().invoke(main, [site, "customers", *args, "-c", str(config)], catch_exceptions=False)
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    assert run("addresses", code).splitlines()[1:] == ["no further addresses"]
    first = run("add-address", code, "--kind", "billing", "--street", "Calle Mayor 1", "--city", "Madrid", "--preferred")
    second = run("add-address", code, "--kind", "billing", "--label", "office", "--street", "Gran Vía 2")
    assert first.split()[1:] == ["billing", "Calle", "Mayor", "1,", "Madrid", "preferred"]
    listed = run("addresses", code).splitlines()
    assert len(listed) == 3 and listed[1].startswith(first.split()[0]) and listed[1].endswith("preferred")
    assert "billing (office)" in listed[2] and not listed[2].endswith("preferred")

    run("prefer-address", code, second.split()[0][:5])
    assert address_for(db.conn, dict(ann(hq)), "billing") == "Gran Vía 2"
    assert "removed" in run("remove-address", code, second.split()[0])
    assert address_for(db.conn, dict(ann(hq)), "billing") == "Calle Mayor 1, Madrid"

    refused = run("add-address", code, "--street", "4111111111111111", ok=False)
    assert "error: street this is a payment card number (411111******1111)" in refused and "4111111111111111" not in refused
    assert "give at least the first 4 characters" in run("remove-address", code, "ab", ok=False)
    assert "has no address ffff" in run("remove-address", code, "ffff", ok=False)
    assert "error: street give at least a street" in run("add-address", code, "--kind", "other", ok=False)
