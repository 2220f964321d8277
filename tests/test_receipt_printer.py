"""Receipt layout/rendering, the on-disk print spool, and printer I/O.

The printer I/O tests run against a real TCP server on 127.0.0.1 that
answers DLE EOT queries with chosen bytes and records what it receives.
"""

from __future__ import annotations

import copy
import logging
import socket
import time
from pathlib import Path

import pytest
from fake_printer import FakePrinter

from devices.printer.io import FilePrinter, NetworkPrinter, PrinterStatus, query_status
from devices.printer.receipt import render_receipt, text_lines
from devices.printer.spool import Spool

LONG_DESCRIPTION = (
    "Queso manchego curado extra añejo de oveja pieza grande 500 g "
    "con denominación de origen protegida"
)

RECEIPT = {
    "store": {"id": "S001", "name": "Supermercado Ñandú €", "address": "Calle Mayor 1, Madrid",
              "tax_id": "B12345678"},
    "ticket": "S001-L1-7",
    "lane": "L1",
    "closed_at": "2026-11-25T10:00:00+00:00",
    "lines": [
        {"sku": "100", "description": "Leche entera 1L", "qty": "1", "unit_price": "1.04",
         "amount": "1.04", "tax_rate": "4.00"},
        {"sku": "200", "description": LONG_DESCRIPTION, "qty": "3", "unit_price": "3.00",
         "amount": "9.00", "tax_rate": "10.00"},
        {"sku": "300", "description": "Plátanos", "qty": "1.000", "unit_price": "1.03",
         "amount": "1.03", "tax_rate": "4.00"},
    ],
    "subtotal": "11.07",
    "total": "10.07",
    "currency": "EUR",
    "taxes": [
        {"rate": "4.00", "base": "1.99", "tax": "0.08", "total": "2.07"},
        {"rate": "10.00", "base": "7.27", "tax": "0.73", "total": "8.00"},
    ],
    "coupon": {"code": "WELCOME5", "discount": "1.00"},
    "customer": {"code": "C-0042", "name": "José Müller", "tax_id": "X1234567L"},
    "barcode": "S001-L1-7",
    "footer": "Thank you",
}


def receipt(**changes) -> dict:
    r = copy.deepcopy(RECEIPT)
    r.update(changes)
    return r


def line_with(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


# -- text_lines --------------------------------------------------------------


@pytest.mark.parametrize("width", [42, 32])
def test_layout_amounts_right_aligned_and_nothing_wider_than_paper(width):
    lines = text_lines(RECEIPT, width)
    assert all(len(line) <= width for line in lines), [l for l in lines if len(l) > width]
    for prefix, amount in [("Leche entera 1L", "1.04"), ("Plátanos", "1.03"),
                           ("Subtotal", "11.07"), ("Coupon WELCOME5", "-1.00"),
                           ("TOTAL EUR", "10.07")]:
        line = line_with(lines, prefix)
        assert len(line) == width and line.endswith(" " + amount), (line, width)
    assert lines[0].strip() == "Supermercado Ñandú €"
    assert "Calle Mayor 1, Madrid" in [l.strip() for l in lines]
    assert "Tax ID: B12345678" in [l.strip() for l in lines]
    assert line_with(lines, "Ticket S001-L1-7").endswith("Lane L1")
    assert "2026-11-25 10:00" in lines
    assert lines[-1].strip() == "Thank you"


@pytest.mark.parametrize("width", [42, 32])
def test_long_description_wraps_once_then_truncates_keeping_amount_column(width):
    lines = text_lines(RECEIPT, width)
    first = line_with(lines, "Queso manchego")
    assert len(first) == width and first.endswith(" 9.00")
    i = lines.index(first)
    continuation = lines[i + 1]
    assert continuation and not continuation.startswith(" ")
    assert "9.00" not in continuation and len(continuation) <= width - len(" 9.00")
    # Both pieces are words of the description, in order; the tail is cut.
    shown = first[: -len("9.00")].split() + continuation.split()
    words = LONG_DESCRIPTION.split()
    assert shown == words[: len(shown)] and len(shown) < len(words)
    assert "protegida" not in "\n".join(lines)
    assert lines[i + 2] == "  3 x 3.00"


@pytest.mark.parametrize("width", [42, 32])
def test_qty_line_only_when_qty_is_not_one(width):
    lines = text_lines(RECEIPT, width)
    assert sum(" x " in line for line in lines) == 1  # qty "1" and "1.000": no line
    weighed = receipt(lines=[{"sku": "1", "description": "Plátanos", "qty": "0.750",
                              "unit_price": "1.37", "amount": "1.03", "tax_rate": "4.00"}])
    lines = text_lines(weighed, width)
    assert lines[lines.index(line_with(lines, "Plátanos")) + 1] == "  0.750 x 1.37"


@pytest.mark.parametrize("width", [42, 32])
def test_coupon_line_present_only_with_coupon(width):
    assert line_with(text_lines(RECEIPT, width), "Coupon WELCOME5").endswith("-1.00")
    negative = receipt(coupon={"code": "X", "discount": "-2.50"})  # sign not doubled
    assert line_with(text_lines(negative, width), "Coupon X").endswith(" -2.50")
    assert not any("Coupon" in line for line in text_lines(receipt(coupon=None), width))


@pytest.mark.parametrize("width", [42, 32])
def test_tax_table_columns(width):
    lines = text_lines(RECEIPT, width)
    header = line_with(lines, "Tax %")
    i = lines.index(header)
    assert header.endswith("Tax") and len(header) == width
    four, ten = lines[i + 1], lines[i + 2]
    assert four.split() == ["4.00%", "1.99", "0.08"] and four.endswith("0.08")
    assert ten.split() == ["10.00%", "7.27", "0.73"] and ten.endswith("0.73")
    # base column right-aligned at the same column in every row
    assert four.index("1.99") + 4 == ten.index("7.27") + 4 == header.index("Base") + 4


@pytest.mark.parametrize("width", [42, 32])
def test_customer_block_present_or_absent(width):
    lines = text_lines(RECEIPT, width)
    assert "Customer: José Müller" in lines
    assert "Code: C-0042" in lines
    assert "Tax ID: X1234567L" in lines
    anonymous = text_lines(receipt(customer=None), width)
    assert not any(l.startswith(("Customer:", "Code:")) for l in anonymous)
    assert "Tax ID: X1234567L" not in anonymous


def test_control_characters_in_data_cannot_inject_commands():
    evil = receipt(lines=[{"sku": "1", "description": "Bad\x1bV\x00data\nline", "qty": "1",
                           "unit_price": "1.00", "amount": "1.00", "tax_rate": "4.00"}])
    lines = text_lines(evil, 42)
    item = line_with(lines, "Bad")
    assert item.startswith("Bad V data line") and item.endswith(" 1.00")
    assert not any(ch in "".join(lines) for ch in "\x1b\x00\n")


# -- render_receipt ----------------------------------------------------------


def test_render_contains_init_codepage_text_barcode_and_cut():
    out = render_receipt(RECEIPT)
    assert out.startswith(b"\x1b@" + b"\x1bt\x13")  # ESC @, then ESC t 19 = CP858
    assert "Supermercado Ñandú €".encode("cp858") in out  # € = 0xD5 in CP858
    data = b"{BS001-L1-7"
    assert b"\x1dkI" + bytes([len(data)]) + data in out  # GS k 73 (CODE128) n data
    assert out.endswith(b"\x1bd\x06\x1dV\x00")  # feed 6 lines, GS V 0 full cut
    # Every plain-text line is printed as is, in the chosen code page
    # (the barcode line is the HRI text printed by the printer itself).
    for line in text_lines(RECEIPT, 42):
        if line.strip() != "S001-L1-7":
            assert line.encode("cp858") in out, line
    assert b"\x1b!\x10\x1bE\x01" + b"TOTAL EUR" in out  # double height + bold


def test_render_without_cut_and_other_codepage_does_not_crash_on_euro():
    out = render_receipt(RECEIPT, codepage="cp437", width=32, cut=False)
    assert out.startswith(b"\x1b@\x1bt\x00")
    assert b"\x1dV" not in out
    assert "Supermercado Ñandú ?".encode("cp437") in out  # no € in CP437
    assert b"\x1dw\x02" in out  # thinner bars so the barcode fits 32 columns
    with pytest.raises(ValueError):
        render_receipt(RECEIPT, codepage="cp999")


def test_barcode_braces_are_escaped_and_unencodable_barcode_is_skipped():
    out = render_receipt(receipt(barcode="A{1"))
    assert b"\x1dkI\x06{BA{{1" in out
    out = render_receipt(receipt(barcode="Ñ-1"))
    assert b"\x1dk" not in out
    assert "Thank you".encode() in out


# -- Spool -------------------------------------------------------------------

JOB_A = "0f8a1c2e-0000-4000-8000-00000000000a"
JOB_B = "0f8a1c2e-0000-4000-8000-00000000000b"
JOB_C = "0f8a1c2e-0000-4000-8000-00000000000c"


def test_spool_add_pending_done(tmp_path):
    spool = Spool(tmp_path)
    assert spool.pending() == []
    assert spool.add(JOB_B, RECEIPT) is True
    assert spool.add(JOB_A, receipt(ticket="S001-L1-8")) is True
    assert spool.add(JOB_B, RECEIPT) is False  # redelivered while pending
    assert spool.pending() == [(JOB_B, RECEIPT), (JOB_A, receipt(ticket="S001-L1-8"))]
    assert not spool.printed(JOB_B)
    spool.done(JOB_B)
    assert spool.printed(JOB_B)
    assert spool.pending() == [(JOB_A, receipt(ticket="S001-L1-8"))]
    assert spool.add(JOB_B, RECEIPT) is False  # redelivered after printing
    assert [job for job, _ in spool.pending()] == [JOB_A]
    assert spool.add(JOB_C, RECEIPT) is True
    assert [job for job, _ in spool.pending()] == [JOB_A, JOB_C]  # oldest first


def test_spool_restart_sees_pending_and_printed(tmp_path):
    first = Spool(tmp_path)
    for job in (JOB_C, JOB_A, JOB_B):
        assert first.add(job, receipt(ticket=job))
    first.done(JOB_A)
    del first
    second = Spool(tmp_path)
    assert second.pending() == [(JOB_C, receipt(ticket=JOB_C)), (JOB_B, receipt(ticket=JOB_B))]
    assert second.printed(JOB_A) and not second.printed(JOB_B)
    assert second.add(JOB_A, RECEIPT) is False
    assert second.add(JOB_B, RECEIPT) is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_spool_crash_between_recording_and_removing(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    spool.add(JOB_A, RECEIPT)

    def crash(self, missing_ok=False):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        spool.done(JOB_A)
    monkeypatch.undo()
    restarted = Spool(tmp_path)
    assert restarted.printed(JOB_A)
    assert restarted.pending() == []
    assert not any(JOB_A in p.name for p in tmp_path.iterdir())


def test_spool_torn_printed_ids_file(tmp_path):
    spool = Spool(tmp_path)
    spool.add(JOB_A, RECEIPT)
    spool.done(JOB_A)
    spool.add(JOB_B, RECEIPT)
    with open(tmp_path / "printed.ids", "a") as f:  # crash in the middle of done(JOB_B)
        f.write(JOB_B[:10])
    restarted = Spool(tmp_path)
    assert restarted.printed(JOB_A) and not restarted.printed(JOB_B)
    assert [job for job, _ in restarted.pending()] == [JOB_B]
    restarted.done(JOB_B)
    assert Spool(tmp_path).printed(JOB_B)


def test_spool_keeps_last_n_printed_ids(tmp_path):
    spool = Spool(tmp_path, keep=3)
    ids = [f"job-{i}" for i in range(10)]
    for job in ids:
        spool.add(job, RECEIPT)
        spool.done(job)
    for s in (spool, Spool(tmp_path, keep=3)):
        assert [s.printed(job) for job in ids] == [False] * 7 + [True] * 3
    assert len((tmp_path / "printed.ids").read_text().splitlines()) <= 6


def test_spool_corrupt_job_file_is_moved_aside(tmp_path, caplog):
    spool = Spool(tmp_path)
    spool.add(JOB_A, RECEIPT)
    spool.add(JOB_B, RECEIPT)
    [job_b_file] = [p for p in tmp_path.iterdir() if JOB_B in p.name]
    job_b_file.write_bytes(job_b_file.read_bytes()[:25])  # partial JSON
    with caplog.at_level(logging.WARNING, logger="devices.printer.spool"):
        assert spool.pending() == [(JOB_A, RECEIPT)]
    assert "corrupt" in caplog.text and JOB_B in caplog.text
    assert not job_b_file.exists()
    assert Path(str(job_b_file) + ".bad").exists()
    assert spool.pending() == [(JOB_A, RECEIPT)]
    assert spool.add(JOB_B, RECEIPT) is True  # a redelivery can recover it


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "/etc/passwd", "..", "a.b", "",
                                    "x" * 65, "job\n", "ñ", None, 7])
def test_spool_refuses_unsafe_job_ids(tmp_path, bad_id):
    directory = tmp_path / "spool"
    spool = Spool(directory)
    with pytest.raises(ValueError):
        spool.add(bad_id, RECEIPT)
    with pytest.raises(ValueError):
        spool.done(bad_id)
    with pytest.raises(ValueError):
        spool.printed(bad_id)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spool"]
    assert list(directory.iterdir()) == []
    assert Spool(directory).add("x" * 64, RECEIPT) is True


# -- printer I/O against a real TCP server -----------------------------------


@pytest.fixture
def fake_printer():
    servers = []

    def make(printer=b"\x12", cause=b"\x12", paper=b"\x12"):
        server = FakePrinter({1: printer, 2: cause, 4: paper})
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


ALL_QUERIES = b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"


@pytest.mark.parametrize("answers, expected", [
    ({}, "ok"),
    ({"paper": b"\x72"}, "paper_out"),
    ({"paper": b"\x1e"}, "paper_near_end"),
    ({"printer": b"\x1a", "cause": b"\x16"}, "cover_open"),
    ({"printer": b"\x1a", "cause": b"\x32", "paper": b"\x72"}, "paper_out"),
    ({"printer": b"\x1a"}, "offline"),
    ({"paper": b"\x00"}, "unknown"),  # not a status byte
    ({"cause": b"\x12\x12"}, "unknown"),  # two bytes for one query
])
def test_network_printer_status(fake_printer, answers, expected):
    server = fake_printer(**answers)
    status = NetworkPrinter("127.0.0.1", server.port, timeout=0.3).status()
    assert status == expected and isinstance(status, str)
    [received] = server.wait_for_connections(1)
    assert received == ALL_QUERIES[: len(received)] and received.startswith(b"\x10\x04\x01")
    if expected not in ("unknown",):
        assert received == ALL_QUERIES


@pytest.mark.parametrize("silent", ["printer", "cause", "paper"])
def test_network_printer_that_never_answers_is_unknown(fake_printer, silent):
    server = fake_printer(**{silent: None})
    started = time.monotonic()
    assert NetworkPrinter("127.0.0.1", server.port, timeout=0.3).status() == "unknown"
    assert time.monotonic() - started < 2


def test_network_printer_unreachable_is_offline():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert NetworkPrinter("127.0.0.1", port, timeout=0.3).status() == "offline"
    with pytest.raises(OSError):
        NetworkPrinter("127.0.0.1", port, timeout=0.3).print_bytes(b"x")


def test_query_status_treats_errors_and_silence_as_unknown():
    assert query_status(lambda q: b"\x12") == PrinterStatus.OK
    assert query_status(lambda q: b"") == "unknown"
    assert query_status(lambda q: None) == "unknown"

    def timeout(q):
        raise TimeoutError

    assert query_status(timeout) == "unknown"


def test_print_bytes_delivers_exactly_the_rendered_bytes(fake_printer):
    server = fake_printer()
    data = render_receipt(RECEIPT) * 20  # > one TCP segment
    started = time.monotonic()
    NetworkPrinter("127.0.0.1", server.port, timeout=3.0).print_bytes(data)
    # Half-close (SHUT_WR) lets the printer see the end of the job and
    # close; print_bytes returns then, not after its 3 s timeout.
    assert time.monotonic() - started < 1.5
    assert server.wait_for_connections(1) == [data]


def test_file_printer(tmp_path):
    path = tmp_path / "lp0"
    printer = FilePrinter(path)
    assert printer.status() == "offline"  # no device
    with pytest.raises(OSError):
        printer.print_bytes(b"x")
    assert not path.exists()  # never created
    path.write_bytes(b"")
    assert printer.status() == "unknown"
    data = render_receipt(RECEIPT)
    printer.print_bytes(data)
    printer.print_bytes(b"second")
    assert path.read_bytes() == data + b"second"
    assert FilePrinter(tmp_path).status() == "offline"  # a directory: EISDIR, even as root
