"""`make screenshots`: the main pages over demo data, as PNGs in docs/screenshots/.

Starts a chain (HQ + S001 + brokers) with the demo customers and catalogue,
adds an admin, a pair of possible duplicates and a few sales, then drives
Debian's Chromium through the pages a store admin and an HQ manager use.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from playwright.sync_api import sync_playwright

from lanehub.chain.demo import _load_catalogue, declare_demo_fields, load_pos_demo
from lanehub.chain.demo_data import DEMO_IMPORTS
from lanehub.chain.local import Chain
from lanehub.protocol import topics
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PASSWORD = "demo password 1"


def wait(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError("demo data did not arrive")


def sell(chain: Chain, customer_code: str) -> None:
    """Two closed tickets at S001's lane L1 for the customer, through the broker."""
    lane = MqttClient(BrokerSettings(port=chain.store_brokers["S001"].port), "screenshots-lane")
    lane.start()
    lane.wait_connected(10)
    for codes in (["8410297112041", "8410000810004", "8410010210016"], ["8410406311017", "8410091020217"]):
        lane.publish(topics.ticket_cmd("S001", "L1"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "op": "set_customer",
                                                                  "code": customer_code}).encode())
        for code in codes:
            lane.publish(topics.scan("S001", "L1"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "code": code}).encode())
        lane.publish(topics.ticket_cmd("S001", "L1"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "op": "close"}).encode())
    time.sleep(2)
    lane.stop()


def _pos_customer(chain: Chain, workdir: Path) -> str:
    """The demo's POS import and batch (lanehub.chain.demo); returns an imported customer's code."""
    load_pos_demo(chain, workdir)
    hq = sqlite3.connect(workdir / "hq.db")
    code = hq.execute("SELECT code FROM customers WHERE external_id = '4711'").fetchone()[0]
    hq.close()
    wait(lambda: chain.edge_cli("S001", "customers", "show", code, check=False).returncode == 0)
    return code


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lanehub-screenshots-"))
    chain = Chain(workdir, ("S001",), hq_settings=DEMO_IMPORTS)
    try:
        chain.start(demo_customers=120, prepare=declare_demo_fields)
        chain.edges["S001"].wait_for_log(": snapshot at seq", 60)
        _load_catalogue(chain, workdir)
        chain.hq_cli("users", "add", "admin", "--role", "admin", "--name", "Ada Admin", "--password-stdin",
                     input=PASSWORD + "\n")
        codes = []
        for city in ("Sevilla", "Cádiz"):
            out = chain.hq_cli("customers", "add", "--first-name", "Lucía", "--last-name", "Moreno Vidal",
                               "--phone", "+34 600 555 123", "--city", city, "--email", "lucia@example.com").stdout
            codes.append(json.loads(out)["code"])
        chain.hq_cli("customers", "add-card", codes[0], "CARD-0001234")
        chain.edge_cli("S001", "customers", "add", "--first-name", "Pedro", "--last-name", "Nuevo", "--city", "Madrid")
        wait(lambda: chain.edge_cli("S001", "customers", "show", codes[0], check=False).returncode == 0)
        sell(chain, codes[0])
        pos_code = _pos_customer(chain, workdir)
        lane = MqttClient(BrokerSettings(port=chain.store_brokers["S001"].port), "screenshots-devices")
        lane.start()
        lane.wait_connected(10)
        for device, kind, state, detail in (("SC1", "scanner", "online", ""), ("CR1", "card_reader", "online", ""),
                                            ("P1", "printer", "online", "paper_near_end")):
            lane.publish(topics.device_status("S001", device), json.dumps(
                {"v": 1, "state": state, "kind": kind, "lane": "L1", "detail": detail}).encode(), retain=True)
        lane.publish(topics.scan("S001", "L2"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "code": "8410128000018"}).encode())
        time.sleep(1)
        lane.stop()
        urls = {site: f"http://127.0.0.1:{port}" for site, port in chain.web_ports.items()}
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for site, url in urls.items():
                page.goto(url + "/login")
                if site == "hq":
                    page.screenshot(path=str(OUT / "login.png"))
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(url + "/customers/")
                wait(lambda: (page.reload() or True) and "CUST-00001" in page.content())
                shots = {
                    "hq": [("hq-customers", "/customers/"), ("hq-customer-detail", f"/customers/{codes[0]}"),
                           ("hq-duplicates", "/duplicates/"), ("hq-rates", "/rates/?sku=MILK-1L&customer=CUST-00001"),
                           ("hq-rate-detail", "/rates/VIP"), ("hq-stores", "/stores/"),
                           ("hq-products", "/products/"), ("hq-users", "/users/"),
                           ("hq-batches", "/batches/"), ("hq-batch-review", "/batches/1"), ("hq-fields", "/fields/"),
                           ("hq-imports", "/imports/"),
                           ("hq-customer-form-errors", None)],
                    "S001": [("store-customers", "/customers/?q=Nuevo"), ("store-customer-detail", f"/customers/{codes[0]}"),
                             ("store-lanes-devices", "/lanes/"), ("store-sales", "/sales/"),
                             ("store-settings", "/settings/"), ("store-sync", "/sync/"),
                             ("store-customer-owned-fields", f"/customers/{pos_code}/edit")],
                }[site]
                for name, path in shots:
                    if path is None:  # a form sent with errors: the messages beside the fields
                        page.goto(url + "/customers/new")
                        page.fill("input[name=first_name]", "Ana")
                        page.fill("input[name=email]", "ana-at-example")
                        page.click("button:has-text('Save')")
                    else:
                        page.goto(url + path)
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                    print(f"wrote {OUT / (name + '.png')}")
            browser.close()
    finally:
        chain.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
