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
