"""HQ's live stores page and the store's sync page (hq/web/stores.py,
edge/web/sync.py, lanehub/web/live.py): each store's lag and outbox, live over
Server-Sent Events and in real Chromium without a reload; the samples behind
their charts, recorded at most once a minute (and on a change of state) and
pruned after 7 days, at HQ and at the store; sales per store per day.

Most tests run against a real chain (brokers, `lanehub hq run`, two `lanehub
edge run`s); the sample rules and the sales-per-day counting also on HQ's and
the store's real databases and Flask apps without brokers (``sites``)."""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from helpers import browser_login, db_query, edge_db, hq_db, kill_chain, read_events, start_chain, wait_converged, wait_until
from route_walk import login as http_login
from shop import PRODUCTS_CSV, Lane
from web_sites import login

from edge.hq_link import SAMPLES_KEPT as EDGE_SAMPLES_KEPT
from edge.hq_link import HqLink
from hq.samples import SAMPLE_EVERY, SAMPLES_KEPT, prune_samples, sample_store, store_samples
from lanehub.chain.local import Chain
from lanehub.runtime.mqtt import BrokerSettings, MqttClient
from lanehub.runtime.worker import Worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def live_chain(tmp_path_factory):
    """HQ and stores S001, S002 with a catalogue and an admin (alice), for the module."""
    workdir = tmp_path_factory.mktemp("live")
    chain = Chain(workdir, ("S001", "S002"))
    try:
        start_chain(chain)
        chain.hq_cli("users", "add", "alice", "--role", "admin", "--name", "Alice", "--password-stdin",
                     input=PASSWORD + "\n")
        (workdir / "products.csv").write_text(PRODUCTS_CSV)
        chain.hq_cli("products", "import", str(workdir / "products.csv"))
        wait_converged(chain)
        chain.urls = {site: f"http://127.0.0.1:{port}" for site, port in chain.web_ports.items()}
        yield chain
    finally:
        for proc in [chain.hq, *chain.edges.values()]:
            if proc is not None:
                print(f"----- {proc.name} log -----\n{proc.tail(40)}")
        kill_chain(chain)


def store_row(fragment: str, store: str) -> list[str]:
    """The cells of a store's row in the stores table, as text."""
    row = re.search(rf'<tr id="store-{store}">(.*?)</tr>', fragment, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


# --- through the running chain -------------------------------------------------------------

def test_the_stores_stream_sends_each_store_with_lag_and_outbox_and_again_when_it_changes(live_chain):
    base = live_chain.urls["hq"]
    opener = http_login(base, "alice", PASSWORD)
    request = urllib.request.Request(base + "/stores/live", headers={"Accept": "text/event-stream"})
    with opener.open(request, timeout=20) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = read_events(response, 1)[0]
        head = int(re.search(r'id="hq-head">(\d+)<', first).group(1))
        for store in ("S001", "S002"):
            cells = store_row(first, store)
            # Store, Status, Last contact, Outbox, Last applied seq, Lag, Rejected changes
            assert cells[0] == store and cells[1] == "Active"
            assert int(cells[3]) == 0 and int(cells[5]) == head - int(cells[4]) >= 0
            assert f'aria-label="Store {store}: lag and outbox, last hour' in first
        live_chain.hq_cli("customers", "add", "--first-name", "Live", "--last-name", "Stream")
        later = read_events(response, 1)[0]  # sent without asking: HQ's head moved
        assert int(re.search(r'id="hq-head">(\d+)<', later).group(1)) == head + 1
    # Without Accept: text/event-stream (a route walk, a plain client) the fragment comes once.
    with opener.open(base + "/stores/live", timeout=20) as response:
        assert response.headers["Content-Type"].startswith("text/html") and 'id="store-S001"' in response.read().decode()


def test_hq_and_each_store_record_lag_and_outbox_samples(live_chain):
    wait_until(lambda: {r[0] for r in db_query(hq_db(live_chain), "SELECT store FROM store_samples "
                                                                  "WHERE state = 'online'")} == {"S001", "S002"},
               20, 0.2, "a sample of each store at HQ")
    for store in ("S001", "S002"):
        up = wait_until(lambda s=store: db_query(edge_db(live_chain, s), "SELECT lag, pending_up FROM sync_samples "
                                                                         "WHERE hq_link = 'up' AND lag IS NOT NULL"),
                        20, 0.2, f"a sample at {store} with the link up")
        assert up[0]["lag"] >= 0 and up[0]["pending_up"] >= 0
        # Samples a minute apart at most: a running edge ticks every second, yet keeps few.
        assert len(db_query(edge_db(live_chain, store), "SELECT at FROM sync_samples")) <= 3


def test_the_sales_chart_counts_a_closed_sale_of_each_store_on_its_day(live_chain, mqtt):
    for store in ("S001", "S002"):
        lane = Lane(mqtt(live_chain.store_brokers[store].port), store, "L9")
        assert lane.scan("8410000000011")["lines"]
        assert lane.cmd("close")["status"] == "closed"
    wait_until(lambda: db_query(hq_db(live_chain), "SELECT count(*) FROM sales WHERE lane = 'L9'")[0][0] == 2, 20, 0.2,
               "both sales at HQ")
    base = live_chain.urls["hq"]
    with http_login(base, "alice", PASSWORD).open(base + "/stores/", timeout=20) as response:
        page = response.read().decode()
    today = datetime.now(timezone.utc).date().isoformat()
    for store in ("S001", "S002"):
        chart = re.search(rf'aria-label="Store {store}: sales per day.*?</figure>', page, re.S).group(0)
        assert re.search(rf"<tr><td>{today}</td><td>1</td><td>1.20 \w+</td></tr>", chart), chart[-600:]


def test_the_stores_page_updates_in_chromium_without_a_reload(live_chain):
    playwright = pytest.importorskip("playwright.sync_api")
    base = live_chain.urls["hq"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            browser_login(page, base, "alice", PASSWORD)
            page.goto(base + "/stores/")
            page.wait_for_selector("#store-S002 td:text-is('Active')")
            assert page.locator("#stores-live figure svg[role=img]").count() == 2
            page.evaluate("window.notReloaded = true")
            live_chain.edges["S002"].kill()  # its last will says offline, HQ records it
            page.wait_for_selector("#store-S002 td:text-is('Offline')", timeout=20_000)
            live_chain.edges["S002"].start()
            page.wait_for_selector("#store-S002 td:text-is('Active')", timeout=30_000)
            assert page.evaluate("window.notReloaded") is True  # the same page all along: the stream updated it
            assert page.locator("#stores-live.live-stale").count() == 0
        finally:
            browser.close()
    # The change of state was sampled at once, between the minute samples.
    states = [r["state"] for r in db_query(hq_db(live_chain), "SELECT state FROM store_samples WHERE store = 'S002' "
                                                              "ORDER BY at")]
    assert "offline" in states and states[-1] == "online"


# --- on the databases and apps, without brokers ---------------------------------------------

def test_hq_samples_a_store_at_most_once_a_minute_or_on_a_change_of_state_and_prunes_after_a_week(sites):
    _, hq, _ = sites
    now = time.time()
    assert not sample_store(hq, "S001", now)  # never heard from: nothing to chart
    hq.record_status("S001", "online", 4, 0, now)
    hq.create_customer({"first_name": "Lag", "last_name": "Maker"}, "t")
    assert sample_store(hq, "S001", now)
    assert not sample_store(hq, "S001", now + SAMPLE_EVERY - 1)
    hq.record_status("S001", "offline", 0, 0, 0)  # its last will: the figures stay, the state changes
    assert sample_store(hq, "S001", now + SAMPLE_EVERY - 1)
    assert sample_store(hq, "S001", now + 2 * SAMPLE_EVERY)
    samples = store_samples(hq, now - 1)["S001"]
    assert [(s["state"], s["lag"], s["pending_up"]) for s in samples] == [
        ("online", hq.head(), 4), ("offline", hq.head(), 4), ("offline", hq.head(), 4)]
    assert prune_samples(hq, now + SAMPLES_KEPT + SAMPLE_EVERY) == 2  # older than 7 days then
    assert [s["at"] for s in store_samples(hq, 0)["S001"]] == [now + 2 * SAMPLE_EVERY]
    assert store_samples(hq, now + 3 * SAMPLE_EVERY) == {}


def test_the_sales_chart_counts_each_stores_sales_on_their_day(sites):
    apps, hq, _ = sites
    hq.add_store("S002")
    today = datetime.now(timezone.utc).replace(hour=12)
    for store, ticket, when, total in [("S001", "S001-L1-1", today, "2.40"), ("S001", "S001-L1-2", today, "1.10"),
                                       ("S002", "S002-L1-1", today - timedelta(days=2), "5.00"),
                                       ("S002", "S002-L1-2", today - timedelta(days=31), "9.00")]:
        hq.write("sale", f"sale-{ticket}", {"ticket": ticket, "store": store, "lane": "L1", "closed_at": when.isoformat(),
                                            "total": total, "currency": "EUR", "lines": "[]"}, "t")
    client = apps["hq"].test_client()
    login(client, "admin")
    page = client.get("/stores/").get_data(as_text=True)

    def rows(store):
        chart = re.search(rf'aria-label="Store {store}: sales per day.*?</figure>', page, re.S).group(0)
        return re.findall(r"<tr><td>([\d-]+)</td><td>(\d+)</td><td>([^<]*)</td></tr>", chart)

    day = today.date()
    assert len(rows("S001")) == 30 and rows("S001")[-1] == (day.isoformat(), "2", "3.50 EUR")
    assert (str(day - timedelta(days=2)), "1", "5.00 EUR") in rows("S002")
    assert sum(int(n) for _, n, _ in rows("S002")) == 1  # the sale of 31 days ago is not on the chart
    assert "Store S002: sales per day" in page and "<script>" not in page.split("<main>")[1].split("live.js")[0]


def test_the_store_sync_page_charts_the_samples_the_edge_records(sites, tmp_path):
    apps, _, edge = sites
    config = {"store": {"id": "S001", "code_low_water": 10, "outbox_retry": 30.0}}
    hq_client = MqttClient(BrokerSettings(port=1), "never-connected")  # never started: the link is down
    link = HqLink(config, hq_client, hq_client, Worker("test-sync"), lambda: edge, lambda m, r: None, lambda: None)
    now = time.time()
    week_ago = now - EDGE_SAMPLES_KEPT
    assert link.sample(week_ago - 200)
    assert not link.sample(week_ago - 199)  # less than a minute later, the link as it was
    edge.write("customer_extra", "x", {"customer_id": "", "name": "n", "value": "v"}, "t")  # one change in the outbox
    assert link.sample(week_ago - 100)
    rows = db_query(tmp_path / "S001.db", "SELECT hq_link, lag, pending_up FROM sync_samples ORDER BY at")
    assert [tuple(r) for r in rows] == [("down", None, 0), ("down", None, 1)]  # the lag is unknown while down
    assert link.sample(now - 90)
    rows = db_query(tmp_path / "S001.db", "SELECT at FROM sync_samples")
    assert [r["at"] for r in rows] == [now - 90]  # the week-old ones pruned

    edge.conn.execute("INSERT INTO sync_samples (at, hq_link, lag, pending_up) VALUES (?, 'up', 7, 2)", (now - 60,))
    client = apps["store"].test_client()
    login(client, "admin")
    page = client.get("/sync/").get_data(as_text=True)
    assert 'data-live="/sync/live"' in page and 'src="/static/live.js"' in page
    assert 'aria-label="Store S001: lag and outbox, last hour' in page
    figures = re.findall(r"<tr><td>\d\d:\d\d</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    assert figures == [("", "1"), ("7", "2")]  # unknown while down, then 7 behind with 2 waiting
    fragment = client.get("/sync/live").get_data(as_text=True)
    assert 'id="pending-up">1<' in fragment and "<html" not in fragment
    viewer = apps["store"].test_client()
    login(viewer, "powerless")
    assert viewer.get("/sync/").status_code == 403 and viewer.get("/sync/live").status_code == 403
