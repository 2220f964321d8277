"""`lanehub devices run` as a real process against a real broker: a serial
scanner and a serial card reader on pseudo-terminals (unplugged and back),
payment cards never published or logged, a network printer as a real TCP
server (paper out holds the job, redelivered jobs print once, the spool
survives a SIGKILL), and liveness with the last will."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid

import pytest
from fake_printer import FakePrinter
from helpers import wait_until

from devices.readers.swipe import lrc
from lanehub.chain.processes import ServiceProcess
from lanehub.protocol import topics

PAN = "4111111111111111"


class Pty:
    """A serial device: the bridge opens ``link`` (like a udev symlink); the test
    writes to the master. Unplugging closes the master; plugging in makes a new
    pty behind the same link."""

    def __init__(self, link):
        self.link = link
        self.master = None
        self.plug()

    def plug(self):
        self.master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        self.slave = slave
        tmp = f"{self.link}.new"
        os.symlink(self.slave_path, tmp)
        os.replace(tmp, self.link)

    def unplug(self):
        os.close(self.master)
        os.close(self.slave)
        os.unlink(self.link)

    def write(self, data: bytes):
        os.write(self.master, data)


@pytest.fixture
def box(mosquitto, mqtt, tmp_path):
    broker = mosquitto("store", anonymous=True)
    printer = FakePrinter()
    scanner, reader = Pty(str(tmp_path / "scanner")), Pty(str(tmp_path / "cardreader"))
    config = f"""
[store]
id = "S001"

[broker]
port = {broker.port}

[devices]
spool = "{tmp_path / 'spool'}"
retry = 0.2

[device.SC1]
profile = "datalogic-magellan-serial"
lane = "L1"
path = "{scanner.link}"

[device.CR1]
profile = "generic-serial-card-reader"
lane = "L1"
path = "{reader.link}"

[device.P1]
profile = "epson-tm-t88-network"
lane = "L1"
host = "127.0.0.1"
port = {printer.port}
"""
    proc = ServiceProcess("devices", "devices", config, tmp_path / "box")
    client = mqtt(broker.port)
    seen: queue.Queue = queue.Queue()
    everything: list[tuple[str, bytes]] = []
    status: dict[str, dict] = {}

    def on_message(m):
        everything.append((m.topic, m.payload))
        if m.topic.endswith("/status"):
            status[topics.parse(m.topic).device] = json.loads(m.payload)
        else:
            seen.put((m.topic, json.loads(m.payload)))

    client.subscribe("lanehub/S001/#", on_message)
    proc.start()
    box = type("Box", (), {})()
    box.proc, box.client, box.seen, box.everything, box.status = proc, client, seen, everything, status
    box.scanner, box.reader, box.printer, box.broker = scanner, reader, printer, broker

    def next_on(leaf: str, timeout: float = 10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topic, payload = seen.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if topic.endswith(leaf):
                return payload
        raise AssertionError(f"nothing on .../{leaf} within {timeout}s; log:\n{proc.tail(30)}")

    box.next_on = next_on
    wait_until(lambda: all(status.get(d, {}).get("state") == "online" for d in ("SC1", "CR1")), 15,
               message="the readers online")
    # The printer bridge subscribes to its jobs before it first publishes its status:
    # a job sent before that would reach nobody (the edge resends; this test sends once).
    wait_until(lambda: "P1" in status, 15, message="the printer bridge connected")
    yield box
    proc.kill()
    printer.close()


def test_a_serial_scanner_publishes_scans_and_survives_unplug(box):
    box.scanner.write(b"8410000000011\r")
    scan = box.next_on("/scan")
    assert (scan["code"], scan["device"], scan["v"]) == ("8410000000011", "SC1", 1) and scan["id"]
    box.scanner.write(b"84100")  # a frame in two pieces
    time.sleep(0.3)
    box.scanner.write(b"00000028\r")
    assert box.next_on("/scan")["code"] == "8410000000028"

    box.scanner.unplug()
    wait_until(lambda: box.status["SC1"] == {"v": 1, "state": "offline", "kind": "scanner", "lane": "L1",
                                               "detail": "unplugged", "instance": box.status["SC1"]["instance"]},
               10, message="SC1 offline")
    box.scanner.plug()
    wait_until(lambda: box.status["SC1"]["state"] == "online", 10, message="SC1 back online")
    box.scanner.write(b"2000000000015\r")
    assert box.next_on("/scan")["code"] == "2000000000015"


def test_card_reads_are_published_and_payment_cards_never_are(box):
    track2 = ";6006123412341234=4912?"
    box.reader.write(f"{track2}{lrc(track2, 2)}\r".encode())
    assert box.next_on("/card")["card"] == "6006123412341234"
    box.reader.write(f"%B{PAN}^DOE/JOHN^2512101000000000000?;{PAN}=25121010000000000000?\r".encode())
    error = box.next_on("/error")
    assert "payment card refused" in error["reason"] and "************1111" in error["reason"]
    box.reader.write(b";E?\r")
    assert "read error" in box.next_on("/error")["reason"]
    box.reader.write(b"LOY-0042\r")
    assert box.next_on("/card")["card"] == "LOY-0042"
    assert not any(PAN.encode() in payload for _, payload in box.everything)
    assert PAN not in (box.proc.log_path.read_text())


def job(receipt_total="1.20") -> dict:
    return {"v": 1, "job": str(uuid.uuid4()), "receipt": {
        "store": {"id": "S001", "name": "Lanehub Market", "address": "Calle Mayor 1", "tax_id": "B1"},
        "ticket": "S001-L1-1", "lane": "L1", "closed_at": "2026-11-25T10:00:00+00:00",
        "lines": [{"sku": "MILK", "description": "Whole milk", "qty": "1", "unit_price": receipt_total,
                   "amount": receipt_total, "tax_rate": "4.00"}],
        "subtotal": receipt_total, "total": receipt_total, "currency": "EUR",
        "taxes": [{"rate": "4.00", "base": "1.15", "tax": "0.05", "total": receipt_total}],
        "coupon": None, "customer": None, "barcode": "S001-L1-1", "footer": "Thank you"}}


def send_job(box, payload):
    box.client.publish(topics.printer_job("S001", "L1", "P1"), json.dumps(payload).encode())


def test_the_printer_prints_once_and_holds_jobs_while_paper_is_out(box):
    first = job()
    send_job(box, first)
    result = box.next_on("/result")
    assert (result["job"], result["ok"]) == (first["job"], True)
    assert len(box.printer.printed) == 1 and b"Lanehub Market" in box.printer.printed[0]
    send_job(box, first)  # redelivered: answered, not printed again
    assert box.next_on("/result")["ok"] is True
    assert len(box.printer.printed) == 1

    box.printer.paper("out")
    second = job("2.40")
    send_job(box, second)
    result = box.next_on("/result")
    assert (result["ok"], result["status"]) == (False, "paper_out")
    wait_until(lambda: box.status.get("P1", {}).get("detail") == "paper_out", 5, message="P1 paper_out status")
    assert len(box.printer.printed) == 1
    box.printer.paper("ok")
    result = wait_until(lambda: (r := box.next_on("/result")) and r["ok"] and r, 10, message="printed after paper")
    assert result["job"] == second["job"] and len(box.printer.printed) == 2


def test_a_printer_that_does_not_answer_is_unknown_never_ok(box):
    box.printer.answers = {1: None, 2: None, 4: None}
    send_job(box, job())
    result = box.next_on("/result", 15)
    assert result["status"] == "unknown"
    wait_until(lambda: box.status.get("P1", {}).get("detail") == "unknown", 5, message="P1 status unknown")


def test_the_spool_survives_a_sigkill_and_the_last_will_says_offline(box):
    box.printer.paper("out")
    pending = job("3.60")
    send_job(box, pending)
    assert box.next_on("/result")["ok"] is False
    box.proc.kill()
    wait_until(lambda: all(box.status.get(d, {}).get("state") == "offline" for d in ("SC1", "CR1", "P1")), 15,
               message="every device offline by last will")
    assert box.status["P1"]["detail"] == "bridge gone"
    box.printer.paper("ok")
    box.proc.start()
    result = wait_until(lambda: (r := box.next_on("/result", 15)) and r["ok"] and r, 20, message="the spooled job printed")
    assert result["job"] == pending["job"] and len(box.printer.printed) == 1


def test_a_malformed_print_job_is_reported_and_the_printer_goes_on(box):
    box.client.publish(topics.printer_job("S001", "L1", "P1"), b'{"v": 1, "job": "../../etc/passwd", "receipt": {"x": 1}}')
    assert "job id" in box.next_on("/error")["reason"]
    box.client.publish(topics.printer_job("S001", "L1", "P1"), b"not json")
    assert "not JSON" in box.next_on("/error")["reason"]
    send_job(box, job())
    assert box.next_on("/result")["ok"] is True


class KeyboardDevice:
    """Stands in for ``evdev.InputDevice`` only: a readable fd and ``read()``
    returning real ``evdev.InputEvent``s; everything after it is the bridge's
    own code path (EvdevSource.read -> KeyDecoder -> ReaderBridge.handle)."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        self.fd = self.read_fd
        self.events: list = []
        self.lock = threading.Lock()

    def type(self, events):
        with self.lock:
            self.events.extend(events)
        os.write(self.write_fd, b"x")

    def read(self):
        os.read(self.read_fd, 1)
        with self.lock:
            events, self.events = self.events, []
        return events


def key_events(text: str):
    from evdev import InputEvent, ecodes

    keys = {**{str(d): getattr(ecodes, f"KEY_{d}") for d in range(10)}, "]": ecodes.KEY_RIGHTBRACE,
            "E": ecodes.KEY_E, "\n": ecodes.KEY_ENTER}
    events = []
    for ch in text:
        shifted = ch == "E"
        if shifted:
            events.append(InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 1))
        events += [InputEvent(0, 0, ecodes.EV_KEY, keys[ch], 1), InputEvent(0, 0, ecodes.EV_KEY, keys[ch], 0)]
        if shifted:
            events.append(InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 0))
    return events


def test_a_hid_scanner_publishes_decoded_scans_with_their_symbology(mosquitto, mqtt):
    from devices.link import DeviceLink
    from devices.profiles import PROFILES_DIR, load_profile
    from devices.readers.bridge import EvdevSource, ReaderBridge
    from lanehub.runtime.mqtt import BrokerSettings

    broker = mosquitto("hid", anonymous=True)
    scans: queue.Queue = queue.Queue()
    mqtt(broker.port).subscribe(topics.scan("S001", "L2"), lambda m: scans.put(json.loads(m.payload)))
    profile = load_profile(PROFILES_DIR / "zebra-ls2208-hid.toml")  # US layout, AIM ids on, Enter
    source = EvdevSource("/dev/lanehub/zebra-ls2208-hid", profile)
    device = KeyboardDevice()
    source.open = lambda: setattr(source, "device", device)  # no /dev/input in CI
    source.close = lambda: None
    bridge = ReaderBridge(DeviceLink(BrokerSettings(port=broker.port), "S001", "SC9", "L2", "scanner"),
                          profile, source, 0.2).start()
    try:
        time.sleep(0.5)
        device.type(key_events("]E08410000000011\n"))
        scan = scans.get(timeout=10)
        assert (scan["code"], scan["symbology"], scan["device"]) == ("8410000000011", "EAN-13 / UPC-A", "SC9")
    finally:
        bridge.stop()


def test_an_unplugged_device_is_logged_once_per_state_not_every_retry(mosquitto, tmp_path, caplog):
    from devices.link import DeviceLink
    from devices.profiles import PROFILES_DIR, load_profile
    from devices.readers.bridge import ReaderBridge, SerialSource
    from lanehub.runtime.mqtt import BrokerSettings

    broker = mosquitto("unplugged", anonymous=True)
    profile = load_profile(PROFILES_DIR / "datalogic-magellan-serial.toml")
    scanner = tmp_path / "scanner"
    bridge = ReaderBridge(DeviceLink(BrokerSettings(port=broker.port), "S001", "SC7", "L1", "scanner"),
                          profile, SerialSource(str(scanner), profile), 0.05)
    with caplog.at_level("INFO", logger="devices.readers.bridge"):
        bridge.start()
        try:
            time.sleep(1.0)  # some 20 retries of an absent device
            pty = Pty(str(scanner))  # plugged in
            wait_until(lambda: any("reading" in r.getMessage() for r in caplog.records), 10, message="the scanner open")
            pty.unplug()
            wait_until(lambda: sum("cannot open" in r.getMessage() for r in caplog.records) == 2, 10,
                       message="the second unplug logged")
            time.sleep(1.0)
        finally:
            bridge.stop()
    told = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert len(told) == 2, told  # once before it was plugged in, once after it was pulled out


@pytest.mark.parametrize("device,problem", [
    ('[device.P1]\nprofile = "epson-tm-t88-network"\nlane = "L1"\n', "[device.P1] host"),
    ('[device.SC1]\nprofile = "datalogic-magellan-serial"\nlane = "L1"\n', "[device.SC1] path"),
    ('[device.SC1]\nprofile = "no-such-model"\nlane = "L1"\npath = "/dev/ttyS0"\n', "[device.SC1] profile"),
    ('[device.SC1]\nprofile = "datalogic-magellan-serial"\nlane = "L 1"\npath = "/dev/ttyS0"\n', "[device.SC1] lane"),
    ('[device."a/b"]\nprofile = "datalogic-magellan-serial"\nlane = "L1"\npath = "/dev/ttyS0"\n', "[device.a/b]"),
])
def test_a_bad_devices_toml_stops_with_one_line(tmp_path, device, problem):
    from lanehub.chain.processes import run_lanehub

    path = tmp_path / "devices.toml"
    path.write_text(f'[store]\nid = "S001"\n\n{device}')
    result = run_lanehub("devices", "run", "-c", str(path), check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and problem in lines[0], result.stderr
