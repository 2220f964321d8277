"""Every lane's receipts on its own printer: real processes end to end (an edge,
`lanehub devices run` per lane PC with a network printer on a real TCP socket),
through a printer outage and a bridge SIGKILL; a lane without a printer keeps
its receipts and says so once; a second bridge with a device id already online
is refused; a frozen bridge shows offline within 10 s (the edge ages
statuses a bridge stops repeating)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from fake_printer import FakePrinter
from helpers import db_query, edge_db, wait_converged, wait_until
from shop import PRODUCTS_CSV, Lane

from edge.db import EdgeDatabase
from edge.lane.printers import PrinterRoutes, printer_for
from lanehub.chain.processes import ServiceProcess, lanehub_command
from lanehub.protocol import topics
from lanehub.protocol.lane import DEVICE_HEARTBEAT


def devices_toml(port: int, lane: str, device: str, printer: FakePrinter, spool) -> str:
    return f"""
[store]
id = "S001"

[broker]
port = {port}

[devices]
spool = "{spool}"
retry = 0.2
status_every = 1

[device.{device}]
profile = "epson-tm-t88-network"
lane = "{lane}"
host = "127.0.0.1"
port = {printer.port}
"""


def printed_tickets(printer: FakePrinter) -> list[str]:
    """The ticket numbers on the receipts a printer printed, in order."""
    out = []
    for job in printer.printed:
        text = job.decode("cp858", errors="replace")
        out += [word for word in text.split() if word.startswith("S001-L")][:1]
    return out


@pytest.fixture
def store(make_chain, mqtt, tmp_path):
    chain = make_chain(stores=("S001",), store_settings={"S001": {"print_retry": 1.0}})
    csv = tmp_path / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))
    wait_converged(chain)
    port = chain.store_brokers["S001"].port
    client = mqtt(port)
    errors: list[dict] = []
    client.subscribe(topics.error("S001"), lambda m: errors.append(json.loads(m.payload)))
    bridges: list[ServiceProcess] = []

    def bridge(lane: str, device: str, printer: FakePrinter) -> ServiceProcess:
        proc = ServiceProcess("devices", f"devices-{device}", devices_toml(port, lane, device, printer, tmp_path / f"spool-{device}"),
                              tmp_path / f"box-{device}")
        bridges.append(proc)
        return proc.start()

    def device_state(device: str) -> str | None:
        rows = db_query(edge_db(chain, "S001"), "SELECT state FROM device_status WHERE device = ?", (device,))
        return rows[0]["state"] if rows else None

    chain.bridge, chain.device_state, chain.errors, chain.client = bridge, device_state, errors, client
    yield chain
    for proc in bridges:
        if proc.running:
            print(f"----- {proc.name} log -----\n{proc.tail(30)}")
        proc.kill()


def test_two_lanes_print_on_their_own_printers_once_through_an_outage_and_a_sigkill(store):
    p1, p2 = FakePrinter(), FakePrinter()
    try:
        store.bridge("L1", "P1", p1)  # lane 1's bridge runs to the end (the fixture stops it)
        b2 = store.bridge("L2", "P2", p2)
        wait_until(lambda: store.device_state("P1") == "online" and store.device_state("P2") == "online", 20,
                   message="both printers online at the edge")
        l1, l2 = Lane(store.client, "S001", "L1"), Lane(store.client, "S001", "L2")
        sold = {"L1": [], "L2": []}

        def close(lane: Lane) -> None:
            lane.scan("8410000000011")
            lane.cmd("close")
            sold[lane.lane] = [r["ticket"] for r in db_query(
                edge_db(store, "S001"), "SELECT ticket FROM print_jobs WHERE lane = ? ORDER BY created_at", (lane.lane,))]

        close(l1)
        close(l2)
        wait_until(lambda: printed_tickets(p1) == sold["L1"] and printed_tickets(p2) == sold["L2"], 15,
                   message="each lane's receipt on its own printer")

        p1.paper("out")  # an outage on lane 1: the receipt waits in the bridge's spool
        wait_until(lambda: db_query(edge_db(store, "S001"), "SELECT detail FROM device_status WHERE device = 'P1'")[0][0]
                   == "paper_out", 40, message="P1 reports paper out")
        close(l1)
        b2.kill()  # lane 2's bridge dies; a receipt is sold meanwhile
        close(l2)
        time.sleep(1.5)
        assert printed_tickets(p1) == sold["L1"][:1] and printed_tickets(p2) == sold["L2"][:1]
        p1.paper("ok")
        b2.start()
        wait_until(lambda: printed_tickets(p1) == sold["L1"] and printed_tickets(p2) == sold["L2"], 40,
                   message="the held receipts printed once the printer and the bridge are back")
        time.sleep(2.5)  # the edge resends every second until it hears "printed": still once each
        assert printed_tickets(p1) == sold["L1"] and printed_tickets(p2) == sold["L2"]
        assert len(sold["L1"]) == len(sold["L2"]) == 2
        rows = db_query(edge_db(store, "S001"), "SELECT lane, device, status FROM print_jobs ORDER BY lane")
        assert [(r["lane"], r["device"], r["status"]) for r in rows] == [
            ("L1", "P1", "printed"), ("L1", "P1", "printed"), ("L2", "P2", "printed"), ("L2", "P2", "printed")]
    finally:
        p1.close()
        p2.close()


def test_a_lane_without_a_printer_keeps_its_receipts_says_so_once_and_prints_when_one_comes(store):
    lane = Lane(store.client, "S001", "L3")
    for _ in range(2):
        lane.scan("8410000000011")
        lane.cmd("close")
    rows = db_query(edge_db(store, "S001"), "SELECT device, status, attempts FROM print_jobs WHERE lane = 'L3'")
    assert [(r["device"], r["status"], r["attempts"]) for r in rows] == [("", "pending", 0)] * 2
    def told():
        return [e for e in store.errors if "lane L3 has no receipt printer" in e["reason"]]

    wait_until(told, 10, message="the error topic told the lane has no printer")
    time.sleep(2.5)  # several more resend rounds (one a second): nothing is sent, and it is said once
    assert len(told()) == 1, store.errors
    assert db_query(edge_db(store, "S001"), "SELECT sum(attempts) FROM print_jobs WHERE lane = 'L3'")[0][0] == 0

    p3 = FakePrinter()
    try:
        store.bridge("L3", "P3", p3)
        wait_until(lambda: len(p3.printed) == 2, 20, message="the kept receipts printed on the lane's new printer")

        def jobs():
            rows = db_query(edge_db(store, "S001"), "SELECT device, status FROM print_jobs WHERE lane = 'L3'")
            return [(r["device"], r["status"]) for r in rows]

        # The edge marks a job printed when the bridge's result arrives, just after the printer has it.
        wait_until(lambda: jobs() == [("P3", "printed")] * 2, 10, message="both jobs marked printed by the edge")
    finally:
        p3.close()


def test_a_second_bridge_with_an_online_device_id_is_refused_and_the_first_keeps_its_session(store):
    p1 = FakePrinter()
    try:
        first = store.bridge("L1", "P1", p1)
        wait_until(lambda: store.device_state("P1") == "online", 20, message="P1 online")
        second = ServiceProcess("devices", "devices-P1-again",
                                devices_toml(store.store_brokers["S001"].port, "L2", "P1", p1, first.workdir / "spool2"),
                                first.workdir.parent / "box-P1-again").write_config()
        started = time.monotonic()
        result = subprocess.run(lanehub_command("devices", "run", "-c", str(second)), capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert "[device.P1]" in line and "already online" in line and "lane L1" in line, line
        assert time.monotonic() - started < 30
        assert first.running and "took over" not in first.tail(100) and "lost store broker" not in first.tail(100)
        assert store.device_state("P1") == "online"
    finally:
        p1.close()


def test_a_frozen_bridge_shows_offline_within_10_seconds_and_online_again_when_it_thaws(store):
    p1 = FakePrinter()
    try:
        bridge = store.bridge("L1", "P1", p1)
        wait_until(lambda: store.device_state("P1") == "online", 20, message="P1 online")
        bridge.process.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: store.device_state("P1") == "offline", 10, message="the frozen bridge offline")
        finally:
            bridge.process.send_signal(signal.SIGCONT)
        wait_until(lambda: store.device_state("P1") == "online", 20, message="the thawed bridge online again")
    finally:
        p1.close()


def test_a_bridge_repeats_its_status_and_the_edge_writes_only_changes(store):
    p1 = FakePrinter()
    heard = []
    store.client.subscribe(topics.device_status("S001", "P1"), lambda m: heard.append(time.monotonic()))
    try:
        store.bridge("L1", "P1", p1)
        wait_until(lambda: store.device_state("P1") == "online", 20, message="P1 online")
        since = db_query(edge_db(store, "S001"), "SELECT updated_at FROM device_status WHERE device = 'P1'")[0]["updated_at"]
        count = len(heard)
        wait_until(lambda: len(heard) >= count + 3, 3 * DEVICE_HEARTBEAT + 5, message="three repeated statuses")
        assert store.device_state("P1") == "online"
        assert db_query(edge_db(store, "S001"), "SELECT updated_at FROM device_status WHERE device = 'P1'")[0]["updated_at"] == since
    finally:
        p1.close()


def test_a_lanes_printer_is_its_override_then_its_own_bridge_then_the_store_fallback(tmp_path):
    db = EdgeDatabase(tmp_path / "edge.db", "S001")
    routes = PrinterRoutes(lanes={"L9": "P9"}, fallback="PSTORE")
    now = time.time()
    with db.conn:
        for device, lane, state in [("P1b", "L1", "offline"), ("P1a", "L1", "offline"), ("P2", "L2", "offline"),
                                    ("P2z", "L2", "online"), ("SC3", "L3", "online")]:
            db.conn.execute("INSERT INTO device_status (device, kind, lane, state, detail, updated_at) VALUES (?, ?, ?, ?, '', ?)",
                            (device, "scanner" if device.startswith("SC") else "printer", lane, state, now))
    assert printer_for(db.conn, routes, "L9") == "P9"  # edge.toml's [lane.L9] printer
    assert printer_for(db.conn, routes, "L1") == "P1a"  # the lane's printers, by id when none is online
    assert printer_for(db.conn, routes, "L2") == "P2z"  # an online one first
    assert printer_for(db.conn, routes, "L3") == "PSTORE"  # a scanner is no printer: the store's fallback
    assert printer_for(db.conn, PrinterRoutes(), "L3") == ""
    db.close()
