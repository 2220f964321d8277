"""The store page beyond customers: lanes and devices (from the bridges'
retained status, through a real broker and edge), the printer queue with
reprint, closed sales tracked to a customer, and store settings that the
lanes pick up."""

from __future__ import annotations

import io
import json
import re
import time

from helpers import db_query, db_value, edge_db, wait_until
from web_sites import csrf, login

from edge.lane.settings import LaneSettings, apply_settings, stored_settings
from lanehub.domain.sales import sale_key
from lanehub.protocol import topics
from lanehub.replication.sqlite import transaction


def test_device_statuses_reach_the_lanes_page(make_chain, mqtt):
    chain = make_chain(stores=("S001",))
    client = mqtt(chain.store_brokers["S001"].port)
    status = {"v": 1, "state": "online", "kind": "printer", "lane": "L1", "detail": "paper_near_end"}
    client.publish(topics.device_status("S001", "P1"), json.dumps(status).encode(), retain=True)
    rows = wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT * FROM device_status"), 15,
                      message="the device status at the edge")
    assert (rows[0]["device"], rows[0]["state"], rows[0]["detail"]) == ("P1", "online", "paper_near_end")


def test_the_lanes_page_shows_devices_and_reprints_a_receipt(sites):
    apps, _, edge = sites
    with transaction(edge.conn):
        edge.conn.execute("INSERT INTO device_status VALUES ('SC1', 'scanner', 'L1', 'offline', 'unplugged', ?, NULL)",
                          (time.time(),))
        edge.conn.execute("INSERT INTO print_jobs (job, ticket, lane, device, receipt, status, created_at, printed_at) "
                          "VALUES ('job-1', 'S001-L1-7', 'L1', 'printer', '{\"total\": \"1.00\"}', 'printed', ?, ?)",
                          (time.time(), time.time()))
    client = apps["store"].test_client()
    login(client, "admin")
    page = client.get("/lanes/").get_data(as_text=True)
    assert "SC1" in page and "unplugged" in page and "S001-L1-7" in page \
        and 'http-equiv="refresh"' not in page and 'data-live="/lanes/live"' in page
    response = client.post("/lanes/jobs/job-1/reprint", data={"csrf_token": csrf(client, "/lanes/")})
    assert response.status_code == 302
    jobs = edge.conn.execute("SELECT job, status FROM print_jobs WHERE ticket = 'S001-L1-7' ORDER BY created_at").fetchall()
    assert len(jobs) == 2 and jobs[1]["status"] == "pending" and jobs[1]["job"] != "job-1"
    cashier = apps["store"].test_client()
    login(cashier, "till")
    assert cashier.get("/lanes/").status_code == 403


def test_a_waiting_receipt_is_moved_to_another_printer_and_a_printer_gets_a_test_print(sites):
    apps, _, edge = sites
    now = time.time()
    with transaction(edge.conn):
        for device, lane, state in [("P1", "L1", "offline"), ("P2", "L2", "online")]:
            edge.conn.execute("INSERT INTO device_status VALUES (?, 'printer', ?, ?, '', ?, NULL)", (device, lane, state, now))
        edge.conn.execute("INSERT INTO lanes (lane, last_n) VALUES ('L1', 0), ('L3', 0)")
        edge.conn.execute("INSERT INTO print_jobs (job, ticket, lane, device, receipt, status, created_at) "
                          "VALUES ('job-1', 'S001-L1-7', 'L1', 'P1', '{\"total\": \"1.00\"}', 'pending', ?)", (now,))
    client = apps["store"].test_client()
    login(client, "admin")
    page = client.get("/lanes/").get_data(as_text=True)
    # L1 prints on its own (offline) printer; L3 has none, and the page says so.
    assert re.search(r"<td><a [^>]+>L1</a></td>.*?<td>P1</td>", page, re.S)
    assert re.search(r"<td><a [^>]+>L3</a></td>.*?no printer", page, re.S)
    token = csrf(client, "/lanes/")
    assert client.post("/lanes/jobs/job-1/reprint", data={"csrf_token": token, "printer": "NOPE"}).status_code == 400
    assert client.post("/lanes/jobs/job-1/reprint", data={"csrf_token": token, "printer": "P2"}).status_code == 302
    jobs = edge.conn.execute("SELECT job, device, status FROM print_jobs WHERE ticket = 'S001-L1-7' ORDER BY created_at").fetchall()
    # Not printed yet on P1: it moves to P2 (printed once, not on both).
    assert [(j["device"], j["status"]) for j in jobs] == [("P1", "moved"), ("P2", "pending")]
    assert client.post("/lanes/printers/P2/test", data={"csrf_token": token}).status_code == 302
    test = edge.conn.execute("SELECT lane, device, status, receipt FROM print_jobs WHERE ticket = 'test print'").fetchone()
    assert (test["lane"], test["device"], test["status"]) == ("L2", "P2", "pending")
    assert "Test print on printer P2" in json.loads(test["receipt"])["footer"]
    assert client.post("/lanes/printers/SC1/test", data={"csrf_token": token}).status_code == 404
    assert client.post("/lanes/printers/P2/test", data={}).status_code in (400, 403)  # no CSRF token


def test_the_receipts_page_shows_each_lanes_last_receipts_as_pictures_and_the_e_mails(sites):
    from PIL import Image

    from edge.lane.mail import MailOutbox

    apps, _, edge = sites
    receipt = {"store": {"name": "Centro"}, "ticket": "S001-L1-7", "lane": "L1", "closed_at": "2026-11-25T10:00:00+00:00",
               "lines": [{"sku": "MILK", "description": "Milk <b>", "qty": "1", "unit_price": "1.20", "amount": "1.20"}],
               "subtotal": "1.20", "total": "1.20", "currency": "EUR"}
    with transaction(edge.conn):
        for n in range(1, 7):  # six on L1: the page shows the last four
            edge.conn.execute("INSERT INTO print_jobs (job, ticket, lane, device, receipt, status, created_at) "
                              "VALUES (?, ?, 'L1', 'P1', ?, 'printed', ?)",
                              (f"job-{n}", f"S001-L1-{n}", json.dumps(receipt | {"ticket": f"S001-L1-{n}"}), 1000.0 + n))
        MailOutbox(edge.conn).queue("job-6", "S001-L1-6", "ann@example.com", "Your receipt", receipt)
    client = apps["store"].test_client()
    login(client, "admin")
    page = client.get("/receipts/").get_data(as_text=True)
    shown = re.findall(r'alt="Receipt (S001-L1-\d+)"', page)
    assert shown == ["S001-L1-6", "S001-L1-5", "S001-L1-4", "S001-L1-3"]
    assert "ann@example.com" in page and "e-mail receipts are not configured" in page.lower()
    picture = client.get("/receipts/job-6.png")
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert Image.open(io.BytesIO(picture.data)).width == 42 * 12  # an 80 mm printer's dots
    assert client.get("/receipts/nope.png").status_code == 404
    [mail] = MailOutbox(edge.conn).recent()
    token = csrf(client, "/receipts/")
    assert client.post(f"/receipts/mail/{mail.id}/retry", data={"csrf_token": token}).status_code == 302
    cashier = apps["store"].test_client()
    login(cashier, "till")
    assert cashier.get("/receipts/job-6.png").status_code == 403


def test_a_closed_sale_is_tracked_to_a_customer_from_the_store_page(sites):
    apps, _, edge = sites
    with transaction(edge.conn):
        edge.write("sale", sale_key("S001-L1-9"), {"ticket": "S001-L1-9", "store": "S001", "lane": "L1",
                                                   "closed_at": "2026-11-25T10:00:00+00:00", "total": "3.20",
                                                   "currency": "EUR", "lines": "[]", "by": "t"}, "t")
    client = apps["store"].test_client()
    login(client, "till")
    token = csrf(client, "/sales/")
    bad = client.post("/sales/", data={"csrf_token": token, "ticket": "S001-L1-9", "customer": "NOPE-1"})
    assert bad.status_code == 422 and "no customer NOPE-1" in bad.get_data(as_text=True)
    ok = client.post("/sales/", data={"csrf_token": token, "ticket": "S001-L1-9", "customer": "CUST-00001"},
                     follow_redirects=True)
    assert "tracked to CUST-00001" in ok.get_data(as_text=True)
    customer = edge.find_customer("CUST-00001")
    assert edge.replica.get("sale", sale_key("S001-L1-9"))["customer_id"] == customer["id"]
    assert edge.conn.execute("SELECT count(*) FROM outbox WHERE change LIKE '%S001-L1-9%' OR change LIKE ?",
                             (f"%{sale_key('S001-L1-9')}%",)).fetchone()[0] >= 1


def test_store_settings_are_saved_and_applied_to_the_lanes(sites):
    apps, _, edge = sites
    client = apps["store"].test_client()
    login(client, "admin")
    page = client.get("/settings/").get_data(as_text=True)
    assert "Refuse customers" in page
    client.post("/settings/", data={"csrf_token": csrf(client, "/settings/"), "block_defaulters": "1",
                                    "coupon_offline": "allow"})
    settings = apply_settings(LaneSettings(store="S001"), stored_settings(edge.conn))
    assert (settings.block_defaulters, settings.receipt_shows_customer, settings.coupon_offline) == (True, False, "allow")
    bad = client.post("/settings/", data={"csrf_token": csrf(client, "/settings/"), "coupon_offline": "maybe"})
    assert bad.status_code == 400
    viewer = apps["store"].test_client()
    login(viewer, "viewer")
    assert viewer.get("/settings/").status_code == 403


def test_the_sync_page_shows_the_hq_link_and_the_lanes_page_the_last_read(make_chain, mqtt):
    import uuid

    from edge.config import SCHEMA
    from edge.web.app import create_app
    from lanehub.runtime.config import load

    chain = make_chain(stores=("S001",))
    client = mqtt(chain.store_brokers["S001"].port)
    client.publish(topics.device_status("S001", "SC1"), json.dumps(
        {"v": 1, "state": "online", "kind": "scanner", "lane": "L1", "detail": ""}).encode(), retain=True)
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT 1 FROM device_status"), 15)
    client.publish(topics.scan("S001", "L1"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "code": "X1",
                                                          "device": "SC1"}).encode())
    wait_until(lambda: db_value(edge_db(chain, "S001"), "SELECT last_read FROM device_status"), 15,
               message="the scanner's last read recorded")
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT value FROM meta WHERE key = 'hq_link'"), 15)
    config = load(chain.edges["S001"].config_path, SCHEMA)
    app = create_app(config)
    chain.hq_cli("users", "add", "boss", "--role", "admin", "--password-stdin", input="correct horse battery\n")
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT 1 FROM users"), 15)
    web = app.test_client()
    assert login(web, "boss").status_code == 302
    assert "connected" in web.get("/sync/").get_data(as_text=True)
    lanes = web.get("/lanes/").get_data(as_text=True)
    assert "SC1" in lanes and " s ago" in lanes
