"""The cashier screen (edge/web/till.py, edge/lane/till.py) in real Chromium
against a real chain (brokers, `lanehub hq run`, two `lanehub edge run`s): a
sale from scans to the receipt picture, a customer attached by card with their
rate's prices, two tills selling at once, a defaulter's warning, the lane's own
scanner showing on the screen without a reload, a customer created at the till
replicated to the other store, an address given at the till, selling while HQ is stopped, and the refusals a
cashier sees next to the field."""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.parse
import urllib.request

import pytest
from helpers import browser_login, db_query, edge_db, wait_converged, wait_until
from route_walk import login as http_login
from shop import Lane, shop  # noqa: F401  (the module's chain)

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
MILK, BREAD = "8410000000011", "2000000000015"


@pytest.fixture(scope="module")
def tills(shop):  # noqa: F811
    """The shop with cashiers of S001 (carla) and of S002 (sam) and S001's store manager
    (mona), replicated to their stores."""
    for user, role, store in (("carla", "cashier", "S001"), ("sam", "cashier", "S002"), ("mona", "store_manager", "S001")):
        shop.hq_cli("users", "add", user, "--role", role, "--name", user.title(), "--store", store,
                    "--password-stdin", input=PASSWORD + "\n")
    for store in ("S001", "S002"):
        wait_until(lambda: db_query(edge_db(shop, store), "SELECT count(*) FROM users "
                                                          "WHERE username IN ('carla', 'sam', 'mona')")[0][0] == 3,
                   20, message=f"the users at {store}")
    shop.urls = {site: f"http://127.0.0.1:{port}" for site, port in shop.web_ports.items()}
    return shop


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def open_till(browser, chain, lane: str, user: str = "carla", store: str = "S001"):
    page = browser.new_context().new_page()
    browser_login(page, chain.urls[store], user, PASSWORD)
    page.goto(f"{chain.urls[store]}/lanes/{lane}/till")
    return page


def scan(page, code: str, lines: int) -> None:
    """Type a barcode and Enter, as a keyboard-wedge scanner does; wait for the ticket to show ``lines`` lines."""
    page.fill("#till-code", code)
    page.press("#till-code", "Enter")
    page.wait_for_selector(f"#till-lines tbody tr[data-line]:nth-child({lines})")


def total(page) -> str:
    return page.inner_text("#till-total")


def close_and_see_receipt(page) -> None:
    page.click("#till-close")
    page.wait_for_selector("#till-status.till-closed")
    image = page.wait_for_selector("#till-receipt img")
    wait_until(lambda: page.evaluate("(img) => img.complete && img.naturalWidth > 0", image), 10,
               message="the receipt picture loaded")


def test_a_sale_on_the_till_from_three_scans_to_the_receipt_picture_with_the_card_customers_rate(browser, tills):
    page = open_till(browser, tills, "T1")
    assert "No ticket on lane T1 yet" in page.inner_text("#till-live")
    scan(page, MILK, 1)
    scan(page, BREAD, 2)
    scan(page, MILK, 3)
    assert total(page) == "3.35 EUR"  # 1.20 + 0.95 + 1.20 at retail
    assert page.locator("#till-lines .price-source").all_inner_texts() == ["retail"] * 3
    page.evaluate("window.notReloaded = true")  # the scans went without leaving the page
    page.fill("#till-card", "CARD-0001")
    page.click("#till-attach")
    page.wait_for_selector(f"#till-customer :text('{tills.people['Ann']['code']}')")
    # Ann's rate VIP: milk 10 % off; the re-priced lines show where their price comes from.
    sources = page.locator("#till-lines .price-source").all_inner_texts()
    assert sources == ["rate VIP", "retail", "rate VIP"]
    assert total(page) == "3.11 EUR"  # 1.08 + 0.95 + 1.08
    close_and_see_receipt(page)
    ticket = page.inner_text("#till-ticket")
    sale = db_query(edge_db(tills, "S001"), "SELECT total, customer_id, by FROM sales WHERE ticket = ?", (ticket,))
    assert [tuple(r) for r in sale] == [("3.11", tills.people["Ann"]["id"], "carla")]


def test_two_tills_on_two_lanes_sell_at_the_same_time(browser, tills):
    pages = {lane: open_till(browser, tills, lane) for lane in ("T2", "T3")}
    # Playwright's sync pages belong to this thread: interleave by hand, one scan each in turn.
    for n in range(1, 4):
        scan(pages["T2"], MILK, n)
        scan(pages["T3"], BREAD, n)
    assert total(pages["T2"]) == "3.60 EUR" and total(pages["T3"]) == "2.85 EUR"
    for page in pages.values():
        close_and_see_receipt(page)
    tickets = {lane: page.inner_text("#till-ticket") for lane, page in pages.items()}
    assert tickets["T2"].startswith("S001-T2-") and tickets["T3"].startswith("S001-T3-")


def test_a_defaulters_warning_is_prominent_on_the_till(browser, tills):
    page = open_till(browser, tills, "T4")
    scan(page, BREAD, 1)
    page.fill("#till-card", "CARD-0004")  # Dave, a defaulter (S001 serves defaulters, with the warning)
    page.click("#till-attach")
    warning = page.wait_for_selector(".till-warning-strong[data-code=payment_defaulter]")
    assert "defaulter" in warning.inner_text()
    assert page.is_visible(".till-warning-strong")
    # The buttons of the live part work too (their CSRF token came with the stream).
    scan(page, MILK, 2)
    page.click("button[aria-label='Remove line 1']")
    page.wait_for_selector("#till-lines tbody tr[data-line='2']:only-child")
    assert total(page) == "1.20 EUR"


def test_the_lanes_own_scanner_shows_on_the_till_without_a_reload(browser, tills, mqtt):
    page = open_till(browser, tills, "T5")
    page.evaluate("window.notReloaded = true")
    scanner = Lane(mqtt(tills.store_brokers["S001"].port), "S001", "T5")
    scanner.scan(MILK)
    page.wait_for_selector("#till-lines tbody tr[data-line]", timeout=5_000)
    scanner.scan(BREAD)
    page.wait_for_selector("#till-lines tbody tr[data-line]:nth-child(2)", timeout=5_000)
    assert page.evaluate("window.notReloaded") is True


def test_a_customer_created_at_the_till_is_attached_and_reaches_the_other_store(browser, tills):
    page = open_till(browser, tills, "T6")
    scan(page, MILK, 1)
    page.click("#till-new summary")
    page.fill("#new-first_name", "Till")
    page.fill("#new-last_name", "Newcomer")
    page.fill("#new-email", "till.newcomer@example.com")
    page.select_option("#new-rate", "VIP")
    page.fill("#new-card", "CARD-T6")
    page.check("input[name=consent_email]")
    page.click("#till-new button[type=submit]")
    page.wait_for_selector("#till-customer :text('Till Newcomer')")
    assert page.locator("#till-lines .price-source").all_inner_texts() == ["rate VIP"]
    row = db_query(edge_db(tills, "S001"), "SELECT id, code FROM customers WHERE email = 'till.newcomer@example.com'")
    assert len(row) == 1
    wait_converged(tills)
    at_s002 = db_query(edge_db(tills, "S002"), "SELECT code, rate FROM customers WHERE id = ?", (row[0]["id"],))
    assert [tuple(r) for r in at_s002] == [(row[0]["code"], "VIP")]
    card = db_query(edge_db(tills, "S002"), "SELECT customer_id FROM cards WHERE number = 'CARD-T6'")
    assert [r[0] for r in card] == [row[0]["id"]]
    # The customer can be found again from the other store's till.
    other = open_till(browser, tills, "T1", user="sam", store="S002")
    other.fill("#till-q", "Newcomer")
    other.press("#till-q", "Enter")
    other.wait_for_selector(f"#till-found :text('{row[0]['code']}')")
    assert "email" in other.inner_text("#till-found")


def test_an_address_given_at_the_till_is_listed_refuses_a_card_number_beside_its_field_and_reaches_the_other_store(
        browser, tills):
    page = open_till(browser, tills, "T10")
    scan(page, MILK, 1)
    page.fill("#till-card", "CARD-0001")
    page.click("#till-attach")
    page.wait_for_selector(f"#till-customer :text('{tills.people['Ann']['code']}')")
    page.click("#till-address summary")  # "Add an address"
    page.select_option("#till-address select[name=kind]", "delivery")
    page.fill("#address-street", "4111 1111 1111 1111")
    page.click("#till-address button[type=submit]")
    refused = page.wait_for_selector("#err-address-street")
    assert "payment card number" in refused.inner_text() and "4111 1111 1111 1111" not in page.content()
    page.fill("#address-street", "Polígono Sur, nave 7")
    page.fill("#address-city", "Getafe")
    page.check("#till-address input[name=preferred]")
    page.click("#till-address button[type=submit]")
    page.wait_for_selector("#till-addresses :text('Polígono Sur, nave 7, Getafe')")
    assert "(preferred)" in page.inner_text("#till-addresses")
    assert page.locator("#till-lines tbody tr[data-line]").count() == 1  # the sale went on untouched
    ann = tills.people["Ann"]["id"]
    wait_converged(tills)
    at_s002 = db_query(edge_db(tills, "S002"), "SELECT kind, street, city, preferred FROM addresses WHERE customer_id = ?",
                       (ann,))
    assert [tuple(r) for r in at_s002] == [("delivery", "Polígono Sur, nave 7", "Getafe", 1)]


def test_a_bad_quantity_or_an_unknown_code_is_told_next_to_the_field_and_nothing_is_sent(tills):
    base = tills.urls["S001"]
    opener = http_login(base, "carla", PASSWORD)
    page = opener.open(f"{base}/lanes/T7/till").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def post(path, **fields):
        data = urllib.parse.urlencode({"csrf_token": token, **fields}).encode()
        try:
            response = opener.open(urllib.request.Request(f"{base}{path}", data=data))
            return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    status, body = post("/lanes/T7/till/add", code=MILK, qty="lots")
    assert status == 422 and "quantity" in body and 'id="err-code"' in body
    assert db_query(edge_db(tills, "S001"), "SELECT count(*) FROM tickets WHERE ticket LIKE 'S001-T7-%'")[0][0] == 0
    status, body = post("/lanes/T7/till/add", code="0000000000000")
    assert status in (200, 302)
    page = opener.open(f"{base}/lanes/T7/till").read().decode()
    assert "no product with code 0000000000000" in page


def test_the_till_sells_while_hq_is_stopped(browser, tills):
    tills.hq.stop()
    try:
        page = open_till(browser, tills, "T8")
        scan(page, MILK, 1)
        scan(page, BREAD, 2)
        page.fill("#till-card", "CARD-0001")
        page.click("#till-attach")
        page.wait_for_selector("#till-customer :text('Shopper')")
        close_and_see_receipt(page)
        ticket = page.inner_text("#till-ticket")
        assert db_query(edge_db(tills, "S001"), "SELECT total FROM sales WHERE ticket = ?", (ticket,))[0][0] == "2.03"
    finally:
        tills.hq.start()
    wait_converged(tills, timeout=60)


def test_the_lanes_page_shows_each_open_tickets_customer_live(browser, tills, mqtt):
    page = browser.new_context().new_page()
    browser_login(page, tills.urls["S001"], "mona", PASSWORD)
    page.goto(tills.urls["S001"] + "/lanes/")
    page.evaluate("window.notReloaded = true")
    scanner = Lane(mqtt(tills.store_brokers["S001"].port), "S001", "T9")
    scanner.scan(MILK)
    page.wait_for_selector("#lane-T9", timeout=5_000)
    scanner.card("CARD-0001")
    ann = tills.people["Ann"]["code"]
    page.wait_for_selector(f"#lane-T9 :text('{ann} Ann Shopper')", timeout=5_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.get_attribute("#lane-T9 a", "href") == "/lanes/T9/till"  # a store manager may sell too
