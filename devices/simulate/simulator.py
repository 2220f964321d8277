"""Simulated lane devices: a scanner, a card reader and a receipt printer per
lane, on a real store broker, for demos, training and tests without hardware.

Why they are the real bridges: each simulated device is a ``ReaderBridge`` or
``PrinterBridge`` with only the hardware swapped out, so the topics, payloads,
retained ``device/{id}/status`` (kind, lane; last will "bridge gone"), the
spool with its job-id dedup and the print results are the ones a store box
sends, not an imitation of them:

* a scanner or card reader is a ``ReaderBridge`` whose source is a queue of
  typed lines (``QueueSource``) instead of a serial port or an input device,
  so a card read goes through the same swipe parser (a payment card is
  refused, as at a real reader);
* a printer is a ``PrinterBridge`` whose printer (``PaperPrinter``) answers
  the status queries with the mode set at run time (``ok``, ``paper_out``,
  ...) and "prints" each receipt as ``<ticket>-<job>.png`` (``receipt_image``)
  and ``.txt`` (``text_lines``) in the output directory.

Lines typed on standard input, read from a file or posted on the HTTP form
(``devices.simulate.form``) drive the devices; ``parse_command`` says how.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devices.link import DeviceLink
from devices.printer.bridge import PrinterBridge
from devices.printer.io import PrinterStatus
from devices.printer.receipt import render_receipt, text_lines
from devices.printer.spool import Spool
from devices.profiles import DeviceProfile, load_profiles
from devices.readers.bridge import ReaderBridge
from lanehub.protocol import topics
from lanehub.protocol.lane import Receipt
from lanehub.receipts.image import receipt_png

log = logging.getLogger(__name__)

# Shipped profiles the simulated devices behave as (framing, printer width, code page).
SCANNER_PROFILE = "datalogic-magellan-serial"
CARD_READER_PROFILE = "generic-serial-card-reader"
PRINTER_PROFILE = "epson-tm-t88-network"
# Every status a real printer reports, except "unknown" (a printer that does not answer).
PRINTER_MODES = tuple(s.value for s in PrinterStatus if s is not PrinterStatus.UNKNOWN)
DEVICE_PREFIX = {"scanner": "SIM-SC", "card_reader": "SIM-CR", "printer": "SIM-P"}
_FILE_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
KEEP_EVENTS = 50

HELP = """\
Type a line and Enter (lanes: {lanes}; the first lane when none is given):
  4006381333931            scan a barcode
  L2 4006381333931         scan on lane L2
  card 6006123412341234    read a customer or loyalty card (L2 card ...: on lane L2)
  printer paper_out        set the printer's mode: {modes} (L2 printer ok: lane L2's)
  help                     this text
Receipts are written to {out}. Ctrl-C stops."""


def device_id(kind: str, lane: str) -> str:
    """The simulated device's id, unique per store: ``SIM-SC-L1``, ``SIM-CR-L1``, ``SIM-P-L1``."""
    return topics.check_id(f"{DEVICE_PREFIX[kind]}-{topics.check_id(lane, 'lane')}", "device id (lane id too long?)")


# --- what a typed line means ---------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    action: str  # "scan" | "card" | "printer" | "help"
    lane: str = ""
    value: str = ""


def parse_command(line: str, lanes: tuple[str, ...]) -> Command | None:
    """A typed line as a command, None for a blank line or a ``#`` comment.

    ``[LANE] CODE`` scans, ``[LANE] card NUMBER`` reads a card, ``[LANE] printer
    MODE`` sets a printer's mode (every printer's when no lane is given);
    ``help``. Raises ValueError with the reason for anything else.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.lower() in ("help", "?"):
        return Command("help")
    lane = ""
    first, _, rest = text.partition(" ")
    if first in lanes and rest.strip():
        lane, text = first, rest.strip()
    verb, _, arg = text.partition(" ")
    arg = arg.strip()
    if verb.lower() == "card":
        if not arg:
            raise ValueError("card: give the card's number, e.g. card 6006123412341234")
        return Command("card", lane or lanes[0], arg)
    if verb.lower() == "printer":
        if arg not in PRINTER_MODES:
            raise ValueError(f"printer: mode must be one of {', '.join(PRINTER_MODES)}")
        return Command("printer", lane, arg)
    return Command("scan", lane or lanes[0], text)


# --- the hardware the bridges drive --------------------------------------------------------

class QueueSource:
    """A reader's source for ``ReaderBridge``: frames put by ``type()`` instead of a device."""

    path = "(simulated)"

    def __init__(self) -> None:
        self.frames: queue.Queue[str] = queue.Queue()

    def type(self, frame: str) -> None:
        self.frames.put(frame)

    def open(self) -> None:
        pass

    def read(self) -> str | None:
        try:
            return self.frames.get(timeout=0.2)  # the bridge checks for stop between reads
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class PrintedReceipt:
    ticket: str
    job: str
    png: Path
    txt: Path
    at: float


class PaperPrinter:
    """A printer for ``PrinterBridge``: ``status()`` is the mode set at run time;
    ``print_bytes()`` writes the receipt as a PNG and its text."""

    def __init__(self, device: str, profile: DeviceProfile, out: Path, on_printed=None):
        self.device, self.profile, self.out = device, profile, Path(out)
        self.mode = "ok"
        self.spool: Spool | None = None  # the bridge's spool, set by SimulatedLane: where the receipts are
        self.on_printed = on_printed

    def status(self) -> PrinterStatus:
        return PrinterStatus(self.mode)

    def print_bytes(self, data: bytes) -> None:
        if self.mode == "offline":
            raise OSError("printer offline (simulated)")
        # The bridge hands over the ESC/POS bytes only; the receipt they were made from
        # is the pending spooled job that renders to exactly these bytes.
        p = self.profile
        assert self.spool is not None  # set before the bridge starts printing
        for job, receipt in self.spool.pending():
            if render_receipt(receipt, width=p.columns, codepage=p.codepage, profile=p.escpos_profile) == data:
                self._write(job, receipt)
                return
        log.warning("%s: printed %d bytes that no spooled job renders to", self.device, len(data))

    def _write(self, job: str, spooled: dict) -> None:
        p = self.profile
        receipt = Receipt.of(spooled)  # the spooled job's receipt object, read once
        ticket = str(receipt.ticket or "receipt")
        stem = f"{_FILE_SAFE.sub('_', ticket)[:64]}-{job}"
        self.out.mkdir(parents=True, exist_ok=True)
        txt, png = self.out / f"{stem}.txt", self.out / f"{stem}.png"
        # Text first and each file renamed into place: a .png that is there is complete
        # and has its .txt (the form and the tests look for the .png).
        _write_file(txt, ("\n".join(text_lines(receipt, p.columns)) + "\n").encode())
        _write_file(png, receipt_png(receipt, columns=p.columns, codepage=p.codepage, profile=p.escpos_profile))
        log.info("%s: printed %s as %s", self.device, ticket, png)
        if self.on_printed:
            self.on_printed(PrintedReceipt(ticket, job, png, txt, time.time()))


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- the simulator -------------------------------------------------------------------------

class SimulatedLane:
    """One lane's scanner, card reader and printer: real bridges, simulated hardware."""

    def __init__(self, broker, store: str, lane: str, profiles: dict[str, DeviceProfile], out: Path,
                 spool: Path, retry: float, on_printed=None):
        self.lane = lane
        self.scanner_source, self.card_source = QueueSource(), QueueSource()
        self.ids = {kind: device_id(kind, lane) for kind in DEVICE_PREFIX}
        scanner, card_reader, printer = profiles["scanner"], profiles["card_reader"], profiles["printer"]
        self.scanner = ReaderBridge(DeviceLink(broker, store, self.ids["scanner"], lane, scanner.kind),
                                    scanner, self.scanner_source, retry)
        self.card_reader = ReaderBridge(DeviceLink(broker, store, self.ids["card_reader"], lane, card_reader.kind),
                                        card_reader, self.card_source, retry)
        self.paper = PaperPrinter(self.ids["printer"], printer, out, on_printed)
        self.printer = PrinterBridge(DeviceLink(broker, store, self.ids["printer"], lane, printer.kind),
                                     printer, self.paper, spool / self.ids["printer"], retry)
        self.paper.spool = self.printer.spool

    @property
    def bridges(self) -> list:
        return [self.scanner, self.card_reader, self.printer]

    def set_printer_mode(self, mode: str) -> None:
        if mode not in PRINTER_MODES:
            raise ValueError(f"printer mode must be one of {', '.join(PRINTER_MODES)}")
        self.paper.mode = mode
        # Look at the printer now (status, held jobs) rather than at its next [devices] status_every
        # seconds: the bridge's own wake-up, as when a job arrives.
        self.printer.look_now()


class Simulator:
    """Simulated devices for ``lanes`` of ``store``, started and stopped together."""

    def __init__(self, broker, store: str, lanes: tuple[str, ...], out: str | Path, *,
                 spool: str | Path | None = None, printer_profile: str = PRINTER_PROFILE, retry: float = 1.0):
        if not lanes:
            raise ValueError("simulate at least one lane")
        if len(set(lanes)) != len(lanes):
            raise ValueError("a lane is given twice")
        known = load_profiles()
        chosen = {"scanner": SCANNER_PROFILE, "card_reader": CARD_READER_PROFILE, "printer": printer_profile}
        for kind, name in chosen.items():
            if name not in known or known[name].kind != kind:
                raise ValueError(f"no {kind.replace('_', ' ')} profile {name!r}")
        profiles = {kind: known[name] for kind, name in chosen.items()}
        self.store, self.out = store, Path(out)
        self.lane_ids = tuple(lanes)
        spool = Path(spool) if spool else self.out / ".spool"
        self._printed: list[PrintedReceipt] = []
        self._events: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.lanes = {lane: SimulatedLane(broker, store, lane, profiles, self.out, spool, retry, self._on_printed)
                      for lane in lanes}

    @property
    def help(self) -> str:
        return HELP.format(lanes=", ".join(self.lane_ids), modes=", ".join(PRINTER_MODES), out=self.out.resolve())

    def start(self) -> "Simulator":
        self.out.mkdir(parents=True, exist_ok=True)
        for lane in self.lanes.values():
            for bridge in lane.bridges:
                bridge.start()
        log.info("lanehub devices simulate: store %s, lanes %s, receipts in %s",
                 self.store, ", ".join(self.lane_ids), self.out)
        return self

    def wait_connected(self, timeout: float = 10) -> bool:
        """Whether every device is connected to the broker within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        return all(bridge.link.client.wait_connected(max(0.0, deadline - time.monotonic()))
                   for lane in self.lanes.values() for bridge in lane.bridges)

    def stop(self) -> None:
        """Every device's last status is a clean ``offline`` ("stopped")."""
        for lane in self.lanes.values():
            for bridge in lane.bridges:
                bridge.stop()

    # --- driving the devices ----------------------------------------------------------------

    def _lane(self, lane: str) -> SimulatedLane:
        if lane not in self.lanes:
            raise ValueError(f"no simulated lane {lane!r} (lanes: {', '.join(self.lane_ids)})")
        return self.lanes[lane]

    def scan(self, lane: str, code: str) -> None:
        self._lane(lane).scanner_source.type(code)
        self._note(f"{lane}: scanned {code}")

    def card(self, lane: str, number: str) -> None:
        self._lane(lane).card_source.type(number)
        # Never the number itself in the event list: it may be a payment card's.
        self._note(f"{lane}: card read ({len(number)} characters)")

    def set_printer_mode(self, lane: str, mode: str) -> None:
        """``lane``'s printer, or every printer when ``lane`` is ""."""
        for each in [self._lane(lane)] if lane else self.lanes.values():
            each.set_printer_mode(mode)
            self._note(f"{each.lane}: printer {mode}")

    def printer_mode(self, lane: str) -> str:
        return self._lane(lane).paper.mode

    def run_line(self, line: str) -> str:
        """Do what a typed line says; the answer to show (help, or an error)."""
        try:
            command = parse_command(line, self.lane_ids)
            if command is None:
                return ""
            if command.action == "help":
                return self.help
            if command.action == "scan":
                self.scan(command.lane, command.value)
            elif command.action == "card":
                self.card(command.lane, command.value)
            else:
                self.set_printer_mode(command.lane, command.value)
        except ValueError as exc:
            return f"error: {exc}"
        return ""

    # --- what happened ------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        with self._lock:
            self._events = [*self._events[-(KEEP_EVENTS - 1):], (time.time(), text)]

    def _on_printed(self, printed: PrintedReceipt) -> None:
        with self._lock:
            self._printed = [*self._printed[-(KEEP_EVENTS - 1):], printed]
        self._note(f"printed {printed.ticket} ({printed.png.name})")

    def printed(self) -> list[PrintedReceipt]:
        """Receipts printed since the start, newest first."""
        with self._lock:
            return list(reversed(self._printed))

    def events(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(reversed(self._events))


def read_lines(simulator: Simulator, stream, echo=print) -> None:
    """Feed ``stream``'s lines (stdin, a file) to the simulator; answers go to ``echo``."""
    for line in stream:
        answer = simulator.run_line(line)
        if answer:
            echo(answer)
