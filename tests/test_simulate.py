"""`lanehub devices simulate` as a real process on a real Mosquitto: the same
retained statuses (and last will) as the real bridges, scans and card reads
from stdin, a file and the HTTP form, print jobs printed once as PNG + text
with a PrintResult, a paper-out printer that holds its job; and, against a
real edge, a closed ticket whose receipt comes out as a picture."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from helpers import db_value, edge_db, wait_until
from PIL import Image
from test_device_bridges import job

from devices.simulate.simulator import PRINTER_MODES, Command, device_id, parse_command
from lanehub.chain.processes import lanehub_command, run_lanehub
from lanehub.protocol import topics
from lanehub.protocol.lane import CardRead, DeviceStatus, PrintResult, Scan
from lanehub.receipts.layout import text_lines

# The console script itself, as a store box runs it.
LANEHUB = Path(sys.executable).with_name("lanehub")
KINDS = {"SIM-SC": "scanner", "SIM-CR": "card_reader", "SIM-P": "printer"}


def test_a_typed_line_is_a_scan_a_card_read_or_a_printer_mode():
    lanes = ("L1", "L2")
    assert parse_command("4006381333931\n", lanes) == Command("scan", "L1", "4006381333931")
    assert parse_command("L2 4006381333931", lanes) == Command("scan", "L2", "4006381333931")
    assert parse_command("L3 4006381333931", lanes) == Command("scan", "L1", "L3 4006381333931")  # no lane L3
    assert parse_command("card LOY-0042", lanes) == Command("card", "L1", "LOY-0042")
    assert parse_command("L2 card LOY-0042", lanes) == Command("card", "L2", "LOY-0042")
    assert parse_command("printer paper_out", lanes) == Command("printer", "", "paper_out")
    assert parse_command("L2 printer ok", lanes) == Command("printer", "L2", "ok")
    assert parse_command("help", lanes) == Command("help")
    assert parse_command("  ", lanes) is None and parse_command("# a comment", lanes) is None
    for bad, reason in [("card", "card's number"), ("printer jammed", "mode must be one of")]:
        with pytest.raises(ValueError, match=reason):
            parse_command(bad, lanes)
    assert "offline" in PRINTER_MODES and "unknown" not in PRINTER_MODES


def test_device_ids_are_per_lane_and_topic_safe():
    assert [device_id(kind, "L1") for kind in ("scanner", "card_reader", "printer")] == [
        "SIM-SC-L1", "SIM-CR-L1", "SIM-P-L1"]
    assert topics.ID_RE.match(device_id("printer", "lane.7_b"))
    with pytest.raises(ValueError, match="too long"):
        device_id("scanner", "L" * 30)


def devices_toml(path: Path, port: int) -> Path:
    path.write_text(f'[store]\nid = "S001"\n\n[broker]\nport = {port}\n')
    return path


class Simulate:
    """`lanehub devices simulate` with its stdin a pipe and its output in a log file."""

    def __init__(self, tmp_path: Path, config: Path, *args: str):
        self.out = tmp_path / "receipts"
        self.log_path = tmp_path / "simulate.log"
        command = [str(LANEHUB)] if LANEHUB.exists() else lanehub_command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*command, "devices", "simulate", "-c", str(config), "--out", str(self.out), "--retry", "0.3", *args],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                env=os.environ | {"PYTHONUNBUFFERED": "1"})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def type(self, *lines: str) -> None:
        self.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
        self.proc.stdin.flush()

    def wait_for_log(self, text: str, timeout: float = 20) -> str:
        return wait_until(lambda: text in self.log() and self.log(), timeout, message=f"{text!r} in the log")

    @property
    def form_url(self) -> str:
        return re.search(r"form: (\S+)", self.wait_for_log("form: ")).group(1)

    def pictures(self) -> list[Path]:
        return sorted(self.out.glob("*.png")) if self.out.exists() else []

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Store:
    """What is on a store broker: retained statuses by device, the rest by kind of topic, in order."""

    def __init__(self, client):
        self.client = client
        self.status: dict[str, dict] = {}
        kinds = ("scan", "card", "printer_result", "error")
        self.messages: dict[str, queue.Queue] = {kind: queue.Queue() for kind in kinds}
        client.subscribe(topics.device_status_filter("S001"), self._on_status)
        for leaf in ("scan", "card", "printer/+/result"):
            client.subscribe(topics.lane_filter("S001", leaf), self._on_message)
        client.subscribe(topics.error("S001"), self._on_message)

    def _on_status(self, m):
        self.status[topics.parse(m.topic).device] = json.loads(m.payload)

    def _on_message(self, m):
        self.messages[topics.parse(m.topic).kind].put((m.topic, json.loads(m.payload)))

    def next(self, kind: str, timeout: float = 10) -> tuple[str, dict]:
        try:
            return self.messages[kind].get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {kind} within {timeout}s") from None

    def nothing(self, kind: str, seconds: float = 1.0) -> None:
        with pytest.raises(AssertionError):
            self.next(kind, seconds)

    def online(self, devices) -> bool:
        return all(self.status.get(d, {}).get("state") == "online" for d in devices)


@pytest.fixture
def broker(mosquitto):
    return mosquitto("store", anonymous=True)


@pytest.fixture
def store(broker, mqtt):
    return Store(mqtt(broker.port))


@pytest.fixture
def simulate(tmp_path, broker):
    started: list[Simulate] = []

    def start(*args: str) -> Simulate:
        sim = Simulate(tmp_path, devices_toml(tmp_path / "devices.toml", broker.port), *args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.kill()


LANE_DEVICES = ["SIM-SC-L1", "SIM-CR-L1", "SIM-P-L1", "SIM-SC-L2", "SIM-CR-L2", "SIM-P-L2"]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_every_device_has_the_bridges_retained_status_and_goes_offline(store, simulate, how):
    sim = simulate("--lane", "L1", "--lane", "L2", "--no-stdin")
    wait_until(lambda: store.online(LANE_DEVICES), 20, message=f"every device online; log:\n{sim.log()}")
    for device in LANE_DEVICES:
        status = store.status[device]
        DeviceStatus.from_dict(status)
        prefix, lane = device.rsplit("-", 1)
        assert (status["state"], status["kind"], status["lane"]) == ("online", KINDS[prefix], lane)
        assert status["detail"] == ""
    # Said once every device is up: the broker may show the statuses a moment before the line is written.
    sim.wait_for_log("simulated devices online (store S001): SIM-SC-L1, SIM-CR-L1, SIM-P-L1", 10)
    if how == "SIGTERM":
        assert sim.stop() == 0
        detail = "stopped"
    else:
        sim.kill()
        detail = "bridge gone"  # the last will: the broker says it
    wait_until(lambda: all(store.status[d]["state"] == "offline" and store.status[d]["detail"] == detail
                           for d in LANE_DEVICES), 15, message=f"every device offline ({detail})")
    assert "Traceback" not in sim.log()


def test_scans_and_card_reads_from_stdin_and_a_file(tmp_path, store, simulate):
    codes = tmp_path / "codes.txt"
    codes.write_text("# the morning's first customer\n8410000000011\nL2 2000000000015\nL2 card LOY-0042\n")
    sim = simulate("--lane", "L1", "--lane", "L2", "--file", str(codes))
    sim.wait_for_log("Type a line and Enter")  # the help, printed at the start
    # Two devices, two connections: the lanes' scans may arrive in either order.
    scans = dict([store.next("scan"), store.next("scan")])
    scan = scans[topics.scan("S001", "L1")]
    assert Scan.from_dict(scan) == Scan(id=scan["id"], code="8410000000011", ts=scan["ts"], device="SIM-SC-L1")
    assert scans[topics.scan("S001", "L2")]["code"] == "2000000000015"
    topic, card = store.next("card")
    assert topic == topics.card("S001", "L2")
    assert CardRead.from_dict(card).card == "LOY-0042" and card["device"] == "SIM-CR-L2"

    sim.type("4006381333931", "L2 card 6006123412341234", "printer jammed")
    topic, scan = store.next("scan")
    assert (topic, scan["code"], scan["device"]) == (topics.scan("S001", "L1"), "4006381333931", "SIM-SC-L1")
    assert scan["id"] and abs(scan["ts"] - time.time()) < 60
    assert store.next("card")[1]["card"] == "6006123412341234"
    sim.wait_for_log("error: printer: mode must be one of")
    # A payment card at the simulated reader is refused like at a real one: never published.
    sim.type("card 4111111111111111")
    assert "payment card refused" in store.next("error")[1]["reason"]
    store.nothing("card")


def send_job(client, payload: dict, lane: str = "L1") -> None:
    client.publish(topics.printer_job("S001", lane, device_id("printer", lane)), json.dumps(payload).encode())


def test_a_print_job_prints_once_as_a_picture_and_its_text(store, simulate):
    sim = simulate("--no-stdin")
    wait_until(lambda: store.online(["SIM-P-L1"]), 20, message="the printer online")
    first = job("1.20")
    send_job(store.client, first)
    topic, result = store.next("printer_result")
    assert topic == topics.printer_result("S001", "L1", "SIM-P-L1")
    assert PrintResult.from_dict(result) == PrintResult(job=first["job"], ok=True, error=None, status="ok")
    png = sim.out / f"S001-L1-1-{first['job']}.png"
    assert sim.pictures() == [png]
    assert Image.open(png).size[0] == 504  # the default printer profile: 42 columns
    assert png.with_suffix(".txt").read_text() == "\n".join(text_lines(first["receipt"], 42)) + "\n"

    send_job(store.client, first)  # redelivered: answered again, not printed twice
    assert store.next("printer_result")[1] == result
    time.sleep(0.5)
    assert sim.pictures() == [png]

    store.client.publish(topics.printer_job("S001", "L1", "SIM-P-L1"), b"not json")
    assert "not JSON" in store.next("error")[1]["reason"]


def test_a_paper_out_printer_holds_the_job_until_it_is_back(store, simulate):
    sim = simulate()
    wait_until(lambda: store.online(["SIM-P-L1"]), 20, message="the printer online")
    sim.type("printer paper_out")
    wait_until(lambda: store.status["SIM-P-L1"]["detail"] == "paper_out", 10, message="paper_out status")
    held = job("2.40")
    send_job(store.client, held)
    result = store.next("printer_result")[1]
    assert (result["job"], result["ok"], result["status"]) == (held["job"], False, "paper_out")
    assert result["error"] == "printer paper out"
    time.sleep(1)  # several retries: told once per state, still not printed
    store.nothing("printer_result", 0.5)
    assert sim.pictures() == []

    sim.type("L1 printer offline")
    wait_until(lambda: store.status["SIM-P-L1"]["state"] == "offline", 10, message="printer offline")
    assert store.next("printer_result")[1]["status"] == "offline"
    sim.type("L1 printer ok")
    result = store.next("printer_result")[1]
    assert (result["job"], result["ok"]) == (held["job"], True)
    assert [p.name for p in sim.pictures()] == [f"S001-L1-1-{held['job']}.png"]
    assert store.status["SIM-P-L1"]["state"] == "online"


def post(url: str, fields: dict[str, str], host: str | None = None) -> int:
    data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in fields.items()).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if host:
        request.add_header("Host", host)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        return urllib.request.build_opener(NoRedirect).open(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_form_scans_with_its_token_and_refuses_without(store, simulate):
    sim = simulate("--lane", "L1", "--lane", "L2", "--no-stdin", "--http-port", "0")
    url = sim.form_url
    assert url.startswith("http://127.0.0.1:")
    wait_until(lambda: store.online(LANE_DEVICES), 20, message="every device online")
    page = urllib.request.urlopen(url, timeout=10)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    html = page.read().decode()
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    assert "SIM-P-L2" in html and 'action="/scan"' in html and 'action="/printer"' in html

    assert post(url + "scan", {"lane": "L2", "code": "8410000000011"}) == 403
    assert post(url + "scan", {"lane": "L2", "code": "8410000000011", "token": "guess"}) == 403
    store.nothing("scan")
    port = url.rsplit(":", 1)[1].strip("/")
    # A page on another name (DNS rebinding) is refused even with the token.
    assert post(url + "scan", {"lane": "L2", "code": "1", "token": token}, host=f"evil.example:{port}") == 421
    store.nothing("scan", 0.5)

    assert post(url + "scan", {"lane": "L2", "code": "<b>8410000000011</b>", "token": token}) == 303
    topic, scan = store.next("scan")
    assert (topic, scan["code"], scan["device"]) == (topics.scan("S001", "L2"), "<b>8410000000011</b>", "SIM-SC-L2")
    html = urllib.request.urlopen(url, timeout=10).read().decode()
    assert "&lt;b&gt;8410000000011&lt;/b&gt;" in html and "<b>8410000000011" not in html  # escaped

    assert post(url + "card", {"lane": "L1", "card": "LOY-0042", "token": token}) == 303
    assert store.next("card")[1]["card"] == "LOY-0042"
    assert post(url + "printer", {"lane": "L1", "mode": "cover_open", "token": token}) == 303
    wait_until(lambda: store.status["SIM-P-L1"]["detail"] == "cover_open", 10, message="cover_open status")
    assert post(url + "printer", {"lane": "L1", "mode": "ok", "token": token}) == 303

    printed = job()
    send_job(store.client, printed)
    assert store.next("printer_result")[1]["ok"] is True
    html = urllib.request.urlopen(url, timeout=10).read().decode()
    name = f"S001-L1-1-{printed['job']}.png"
    assert f'src="/receipts/{name}"' in html
    picture = urllib.request.urlopen(url + "receipts/" + name, timeout=10)
    assert picture.headers["Content-Type"] == "image/png" and picture.read() == (sim.out / name).read_bytes()
    for bad in ("receipts/..%2Fdevices.toml", "receipts/.spool", "receipts/nope.png"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + bad, timeout=10)
        assert refused.value.code == 404


def test_a_bad_lane_or_config_is_one_line(tmp_path, broker):
    config = devices_toml(tmp_path / "devices.toml", broker.port)
    for args, problem in [(["--lane", "L" * 30], "too long"), (["--lane", "L1", "--lane", "L1"], "twice"),
                          (["--printer-profile", "zebra-ls2208-hid"], "no printer profile")]:
        result = run_lanehub("devices", "simulate", "-c", str(config), "--no-stdin", *args, check=False)
        assert result.returncode == 1 and problem in result.stderr and "Traceback" not in result.stderr, result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\nid = "S 1"\n')
    result = run_lanehub("devices", "simulate", "-c", str(bad), "--no-stdin", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "[store] id" in result.stderr


PRODUCTS_CSV = """sku,description,brand,size,retail_price,tax_rate,active,barcodes
MILK,Whole milk,Dairyco,1L,1.20,4,yes,8410000000011
"""


def test_a_closed_ticket_prints_its_receipt_on_the_simulated_printer(make_chain, mqtt, tmp_path):
    # The edge sends L1's receipts to the simulated printer: [store] printer names it (the
    # edge also routes by the printers' retained status, kind = printer, lane = L1).
    chain = make_chain(("S001",), store_settings={"S001": {
        "name": "Lanehub Market", "address": "Calle Mayor 1", "printer": "SIM-P-L1", "print_retry": 1.0}})
    csv = tmp_path / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))
    wait_until(lambda: db_value(edge_db(chain, "S001"), "SELECT count(*) FROM products") == 1, 30,
               message="the product at the edge")
    # The edge's own edge.toml gives the simulator its store and broker.
    sim = Simulate(tmp_path, chain.edges["S001"].config_path, "--lane", "L1")
    try:
        client = mqtt(chain.store_brokers["S001"].port)
        states: queue.Queue = queue.Queue()
        client.subscribe(topics.ticket_state("S001", "L1"), lambda m: states.put(json.loads(m.payload)))
        sim.wait_for_log("simulated devices online")
        sim.type("8410000000011")  # the simulated scanner: the edge opens a ticket with the milk
        opened = wait_until(lambda: (s := states.get(timeout=10)) and s["lines"] and s, 15, message="the scan's ticket")
        assert opened["ticket"] == "S001-L1-1" and opened["total"] == "1.20"
        close = {"v": 1, "id": str(uuid.uuid4()), "op": "close"}
        client.publish(topics.ticket_cmd("S001", "L1"), json.dumps(close).encode())
        png = wait_until(lambda: next(iter(sim.out.glob("S001-L1-1-*.png")), None) if sim.out.exists() else None, 30,
                         message=f"the receipt's picture; simulator log:\n{sim.log()}")
        text = png.with_suffix(".txt").read_text()
        assert "Lanehub Market" in text and "Whole milk" in text and "Ticket S001-L1-1" in text
        assert Image.open(png).size[0] == 504
        # The printer's ok result reached the edge: the receipt is printed there too.
        wait_until(lambda: db_value(edge_db(chain, "S001"), "SELECT status FROM print_jobs WHERE ticket = ?",
                                    ("S001-L1-1",)) == "printed", 15, message="the edge recording the receipt printed")
        assert len(list(sim.out.glob("*.png"))) == 1
    finally:
        sim.kill()
