"""Key page flows in a real headless Chromium (Debian's, driven by Playwright)
against real HQ and edge processes and real brokers."""

from __future__ import annotations

import shutil

import pytest
from helpers import browser_login, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def web_chain(make_chain):
    chain = make_chain(stores=("S001",))
    for user, role, store in (("alice", "admin", ""), ("carl", "cashier", "S001")):
        chain.hq_cli("users", "add", user, "--role", role, "--name", user.title(), *(["--store", store] if store else []),
                     "--password-stdin", input=PASSWORD + "\n")
    from helpers import db_query, edge_db

    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT count(*) FROM users")[0][0] == 2, 20,
               message="the users at the store")
    chain.urls = {site: f"http://127.0.0.1:{port}" for site, port in chain.web_ports.items()}
    return chain


def login(page, url, username):
    browser_login(page, url, username, PASSWORD)


def until_page_shows(page, url, text, timeout=20):
    def shown():
        page.goto(url)
        return text in page.content()
    wait_until(shown, timeout, 0.5, message=f"{text!r} on {url}")


def test_a_customer_added_at_hq_shows_at_the_store_and_deactivation_follows(browser, web_chain):
    hq, store = web_chain.urls["hq"], web_chain.urls["S001"]
    page = browser.new_page()
    login(page, hq, "alice")
    page.click("text=Add customer")
    page.fill("input[name=first_name]", "Grace")
    page.fill("input[name=last_name]", "")
    page.click("button:has-text('Save')")
    assert "Last name is required" in page.content() and page.input_value("input[name=first_name]") == "Grace"
    page.fill("input[name=last_name]", "Hopper")
    page.fill("input[name=email]", "grace@example.com")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Customer CUST-")
    code = page.inner_text("h1 small")

    other = browser.new_page()
    login(other, store, "alice")
    until_page_shows(other, f"{store}/customers/?q=Hopper", code)

    page.click("button:has-text('Deactivate')")
    page.wait_for_selector("text=deactivated")
    until_page_shows(other, f"{store}/customers/{code}", "deactivated")


def test_a_store_customer_is_marked_unconfirmed_until_hq_has_it(browser, web_chain):
    store = web_chain.urls["S001"]
    web_chain.hq.kill()
    page = browser.new_page()
    login(page, store, "carl")
    page.click("text=Add customer")
    page.fill("input[name=first_name]", "Linus")
    page.fill("input[name=last_name]", "Offline")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=not yet confirmed by HQ")
    url = page.url
    web_chain.hq.start()
    until_page_shows(page, url, ">synced<", 30)


def test_a_cashier_sees_no_edit_and_is_refused_it(browser, web_chain):
    store = web_chain.urls["S001"]
    page = browser.new_page()
    login(page, store, "carl")
    page.click("text=Add customer")
    page.fill("input[name=first_name]", "Tim")
    page.fill("input[name=last_name]", "Till")
    page.click("button:has-text('Save')")
    page.wait_for_selector("h1 small")
    assert page.locator("text=Edit").count() == 0 and page.locator("button:has-text('Deactivate')").count() == 0
    response = page.goto(page.url + "/edit")
    assert response.status == 403
    assert page.locator("text=Stores").count() == 0
    response = page.goto(web_chain.urls["hq"] + "/login")
    page.fill("input[name=username]", "carl")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.content()  # a store user cannot log in at HQ


def test_a_rate_is_edited_and_the_price_check_shows_its_price(browser, web_chain, tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("sku,description,retail_price,barcodes\nOIL,Olive oil,8.99,8410010210016\n")
    web_chain.hq_cli("products", "import", str(csv))
    hq = web_chain.urls["hq"]
    page = browser.new_page()
    login(page, hq, "alice")
    page.goto(hq + "/rates/")
    page.fill("form.fields input[name=code]", "gold")
    page.fill("form.fields input[name=name]", "Gold customers")
    page.fill("form.fields input[name=start]", "2020-01-01")
    page.click("button:has-text('Create rate')")
    page.wait_for_selector("h1:has-text('Rate GOLD')")
    page.fill("form:has(input[value=line]) input[name=sku]", "OIL")
    page.fill("form:has(input[value=line]) input[name=discount_pct]", "20")
    page.click("button:has-text('Save line')")
    page.wait_for_selector("td:has-text('OIL')")
    code = web_chain.hq_cli("customers", "add", "--first-name", "Gil", "--last-name", "Gold", "--rate", "GOLD").stdout
    code = __import__("json").loads(code)["code"]
    page.goto(hq + "/rates/")
    page.fill("input[name=sku]", "8410010210016")
    page.fill("input[name=customer]", code)
    page.click("button:has-text('Check')")
    assert "7.19" in page.inner_text("p.result") and "rate:GOLD" in page.inner_text("p.result")


def test_possible_duplicates_are_merged_in_the_browser(browser, web_chain):
    import json

    codes = [json.loads(web_chain.hq_cli("customers", "add", "--first-name", "Olga", "--last-name", "Twin",
                                         "--email", "olga@example.com", "--city", city).stdout)["code"]
             for city in ("Vigo", "Lugo")]
    hq, store = web_chain.urls["hq"], web_chain.urls["S001"]
    page = browser.new_page()
    login(page, hq, "alice")
    page.goto(hq + "/duplicates/")
    page.click("text=Review")
    page.check("input[name=survivor] >> nth=1")
    page.click("button:has-text('Merge')")
    page.wait_for_selector("text=the other code still finds this customer")
    kept = page.inner_text("h1 small")
    assert kept in codes
    merged = next(c for c in codes if c != kept)
    other = browser.new_page()
    login(other, store, "alice")
    until_page_shows(other, f"{store}/customers/{merged}", f"<small>{kept}</small>")  # the merged code finds the survivor


def test_the_store_customer_page_shows_hqs_change_history(browser, web_chain):
    import json

    code = json.loads(web_chain.hq_cli("customers", "add", "--first-name", "Hugo", "--last-name", "Audit",
                                       "--city", "Vigo").stdout)["code"]
    web_chain.hq_cli("customers", "edit", code, "--city", "Lugo", "--by", "maria")
    store = web_chain.urls["S001"]
    page = browser.new_page()
    login(page, store, "alice")
    until_page_shows(page, f"{store}/customers/{code}", "City: Lugo")
    text = page.content()
    assert "<td>maria</td>" in text and "City: Vigo" in text
    web_chain.hq.kill()
    page.goto(f"{store}/customers/{code}")
    assert "cannot be reached right now" in page.content()


def test_a_new_customers_batch_is_uploaded_fixed_and_executed_in_the_browser(browser, web_chain, tmp_path):
    import json

    existing = json.loads(web_chain.hq_cli("customers", "add", "--first-name", "Olga", "--last-name", "Twin",
                                           "--email", "olga@example.com").stdout)
    csv = tmp_path / "new.csv"
    csv.write_text("first_name,last_name,email\nAna,Lee,ana@example.com\nOlga,Twin,olga@example.com\n"
                   "Bad,Mail,not-an-email\n")
    hq, store = web_chain.urls["hq"], web_chain.urls["S001"]
    page = browser.new_page()
    login(page, hq, "alice")
    page.goto(hq + "/batches/")
    page.fill("form[enctype] input[name=description]", "Sign-up sheets, week 48")
    page.set_input_files("input[type=file]", str(csv))
    page.click("form[enctype] button:has-text('Start the batch')")
    page.wait_for_selector("h1:has-text('Batch')")
    assert f"Possible duplicate of {existing['code']}" in " ".join(page.inner_text("#row-2").split())
    assert "email is not a valid e-mail address" in page.inner_text("#row-3")
    page.click("button:has-text('Execute batch')")
    assert "row 3" in page.inner_text("#problem") and "row 2" in page.inner_text("#problem")
    page.click("#row-3 summary:has-text('Fix')")
    page.fill("#row-3 input[name=email]", "bad.mail@example.com")
    page.click("#row-3 button:has-text('Save row 3')")
    page.wait_for_selector("#row-3 .badge:has-text('ok')")
    page.click("#row-2 button:has-text('Drop')")
    page.wait_for_selector("#row-2 button:has-text('Take back')")
    page.click("button:has-text('Execute batch')")
    page.wait_for_selector("text=Read-only.")
    codes = [page.inner_text(f"#row-{n} a[href*='/customers/']") for n in (1, 3)]
    assert all(code.startswith("CUST-") for code in codes)
    assert page.locator("button:has-text('Execute batch')").count() == 0  # closed for good
    other = browser.new_page()
    login(other, store, "alice")
    until_page_shows(other, f"{store}/customers/?q=Mail", codes[1])


def test_fields_a_pos_owns_are_read_only_on_the_store_page(browser, web_chain, tmp_path):
    from lanehub.chain.processes import run_lanehub
    from lanehub.runtime.config import dump_toml

    config = tmp_path / "hq-import.toml"
    config.write_text(dump_toml(web_chain.hq_config() | {"import": {"customers": {
        "source": "pos", "columns": {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name", "CITY": "city"},
        "owned": ["first_name", "last_name", "city"]}}}))
    csv = tmp_path / "pos.csv"
    csv.write_text("NUM;NAME;SURNAME;CITY\n4711;Pia;Posada;Toledo\n")
    run_lanehub("hq", "import", "customers", str(csv), "-c", str(config))
    store = web_chain.urls["S001"]
    page = browser.new_page()
    login(page, store, "alice")
    until_page_shows(page, f"{store}/customers/?q=Posada", "Pia")
    from helpers import customer_by, edge_db

    code = customer_by(edge_db(web_chain, "S001"), "external_id", "4711")["code"]
    page.goto(f"{store}/customers/{code}/edit")
    city = page.locator("label:has-text('City') input")
    assert city.get_attribute("readonly") is not None and city.input_value() == "Toledo"
    assert "From pos: change it there." in page.content() and "number 4711" in page.content()
    page.fill("textarea[name=notes]", "prefers e-mail receipts")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=saved")
    assert "prefers e-mail receipts" in page.content() and "Toledo" in page.content()


def test_a_pos_export_is_previewed_and_imported_in_the_browser(browser, web_chain, tmp_path):
    csv = tmp_path / "pos.csv"
    csv.write_text("external_id,first_name,last_name,city\n5001,Nora,Navarro,Soria\n5002,Iker,Ibarra,Irun\n")
    hq, store = web_chain.urls["hq"], web_chain.urls["S001"]
    page = browser.new_page()
    login(page, hq, "alice")
    page.click("nav >> text=Imports")
    page.set_input_files("#import-customers input[type=file]", str(csv))
    page.click("#import-customers button:has-text('Upload customers')")
    page.wait_for_selector("#plan")
    assert "added 2; updated 0; deactivated 0" in page.inner_text("#plan")
    assert "Nora" in page.inner_text("table")
    page.set_input_files("#import-customers input[type=file]", str(csv))
    page.check("#import-customers input[name=confirm]")
    page.click("#import-customers button:has-text('Upload customers')")
    page.wait_for_selector("text=csv -> lanehub: added 2; updated 0; deactivated 0 (0 unchanged).")
    other = browser.new_page()
    login(other, store, "alice")
    until_page_shows(other, f"{store}/customers/?q=Navarro", "Nora")
