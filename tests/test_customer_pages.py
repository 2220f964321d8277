"""The customer pages' polish: "Erase (GDPR)" is a danger action set apart from
Edit and Deactivate and behind a typed confirmation (no JavaScript), and the
change history reads in words (field labels, yes/no, "(empty)"), not Python."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import browser_login
from web_sites import PASSWORD, csrf, login

from hq.gdpr import ERASED_NAME

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def admin(app):
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


def test_erase_is_a_danger_action_apart_from_edit_and_deactivate(sites):
    apps, hq, _ = sites
    page = admin(apps["hq"]).get("/customers/CUST-00001").get_data(as_text=True)
    actions = re.search(r'<div class="actions">(.*?)</div>', page, re.S).group(1)
    assert "Edit" in actions and "Deactivate" in actions and "Erase" not in actions
    zone = re.search(r'<section class="danger-zone"[^>]*>(.*?)</section>', page, re.S)
    assert zone, "the erase form sits in its own danger zone"
    assert '<button type="submit" class="danger">Erase (GDPR)</button>' in zone.group(1)
    assert "cannot be undone" in zone.group(1)
    # The confirmation is a typed field with a label, not a JavaScript confirm().
    assert re.search(r"<label>Type the customer's code, CUST-00001, to confirm <input name=\"confirm\" required",
                     zone.group(1))
    assert "onclick" not in page and "<script>" not in page.replace("&lt;script&gt;", "")
    css = (ROOT / "lanehub" / "web" / "static" / "lanehub.css").read_text()
    assert re.search(r"button\.danger[^{]*\{[^}]*background: #b42318", css)
    assert re.search(r"\.danger-zone \{[^}]*border: 2px solid #b42318", css)


def test_the_store_page_shows_no_erase(sites):
    apps, _, _ = sites
    page = admin(apps["store"]).get("/customers/CUST-00001").get_data(as_text=True)
    assert "danger-zone" not in page and "Erase" not in page


@pytest.mark.parametrize("typed", ["", "CUST-00002", "cust-00001"])
def test_erase_without_the_typed_code_erases_nothing(sites, typed):
    apps, hq, _ = sites
    client = admin(apps["hq"])
    record = hq.find_customer("CUST-00001")
    response = client.post(f"/gdpr/{record['id']}/erase",
                           data={"csrf_token": csrf(client, "/customers/CUST-00001"), "confirm": typed})
    assert response.status_code == 302
    assert hq.find_customer("CUST-00001")["first_name"] == "Ann"
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Not erased: type the customer&#39;s code (CUST-00001) to confirm." in shown


def test_erase_with_the_typed_code_erases(sites):
    apps, hq, _ = sites
    client = admin(apps["hq"])
    record = hq.find_customer("CUST-00001")
    client.post(f"/gdpr/{record['id']}/erase",
                data={"csrf_token": csrf(client, "/customers/CUST-00001"), "confirm": "CUST-00001"})
    assert hq.find_customer("CUST-00001")["first_name"] == ERASED_NAME


def test_the_change_history_reads_in_words(sites):
    apps, hq, _ = sites
    client = admin(apps["hq"])
    record = hq.find_customer("CUST-00001")
    hq.update_customer(record["id"], {"city": "Vigo", "no_paper": True, "payment_status": "pending"}, "maria")
    hq.update_customer(record["id"], {"city": "", "active": False}, "maria")
    page = client.get("/customers/CUST-00001").get_data(as_text=True)
    history = page[page.index("<h2>Changes</h2>"):]
    for words in ("City: Vigo", "E-mail receipts instead of printing: yes", "Payment status: pending",
                  "City: (empty)", "Active: no", "First name: Ann"):
        assert f"<li>{words}</li>" in history, words
    assert not re.search(r"\b(True|False|None)\b", history) and " = " not in history
    assert "no_paper" not in history and "payment_status" not in history


def test_the_create_s_empty_defaults_are_not_listed_as_changes(sites):
    apps, hq, _ = sites
    page = admin(apps["hq"]).get("/customers/CUST-00001").get_data(as_text=True)
    history = page[page.index("<h2>Changes</h2>"):]
    assert "<li>Last name: &lt;script&gt;alert(1)&lt;/script&gt;</li>" in history  # escaped
    assert "(empty)" not in history  # the new record's empty fields are defaults, not changes


# --- in a real browser -------------------------------------------------------------------

@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def test_erase_in_the_browser_needs_the_typed_code_and_the_history_reads_in_words(browser, make_chain):
    import json

    chain = make_chain(stores=("S001",))
    chain.hq_cli("users", "add", "alice", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    code = json.loads(chain.hq_cli("customers", "add", "--first-name", "Erin", "--last-name", "Erase",
                                   "--no-paper").stdout)["code"]
    url = f"http://127.0.0.1:{chain.web_ports['hq']}"
    page = browser.new_page()
    browser_login(page, url, "alice", PASSWORD)
    page.goto(f"{url}/customers/{code}")
    assert page.locator(".danger-zone button.danger").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(180, 35, 24)"
    assert page.locator(".changes li", has_text="E-mail receipts instead of printing: yes").count() == 1
    page.click(".danger-zone button.danger")  # nothing typed: the browser keeps the form (required field)
    assert page.url == f"{url}/customers/{code}" and "Erin" in page.content()
    page.fill(".danger-zone input[name=confirm]", "wrong")
    page.click(".danger-zone button.danger")
    page.wait_for_load_state()
    assert "Not erased: type the customer's code" in page.inner_text("body") and "Erin" in page.content()
    page.fill(".danger-zone input[name=confirm]", code)
    page.click(".danger-zone button.danger")
    page.wait_for_load_state()
    assert f"Customer {code} erased in every store" in page.inner_text("body")
