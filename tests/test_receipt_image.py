"""Receipt pictures (lanehub/receipts/image.py): drawn from the printer's own
layout, at the printer's dot width, in its code page, with real CODE128 bars;
and `lanehub devices receipt`.

There is no OCR here: the text is checked by where its ink is. Each layout
line is found, in order, as its own band of the picture; in a line, a cell
has ink exactly where the layout has a character; changing one value of the
receipt changes only its line's band."""

from __future__ import annotations

import copy
import io
import json

import pytest
from barcode.charsets.code128 import CODES
from PIL import Image, ImageChops
from test_receipt_printer import RECEIPT

from devices.printer.receipt import render_receipt
from devices.profiles import load_profiles
from lanehub.chain.processes import run_lanehub
from lanehub.receipts.image import CELL_HEIGHT, LINE_PITCH, TOP_MARGIN, code128b_modules, dot_width, line_image, receipt_image, receipt_png
from lanehub.receipts.layout import BARCODE, BIG, NORMAL, barcode_module_width, layout, printed_text

CELL = 12


def receipt(**changes) -> dict:
    r = copy.deepcopy(RECEIPT)
    r.update(changes)
    return r


def ink(image: Image.Image, box=None) -> int:
    """How much is printed: the sum of darkness (255 - grey) over ``box``."""
    region = image.crop(box) if box else image
    return sum((255 - value) * count for value, count in enumerate(region.histogram()))


@pytest.mark.parametrize("profile_name, dots", [("epson-tm-t88-network", 504), ("file-printer", 576)])
def test_the_picture_is_the_printers_dot_width(profile_name, dots):
    profile = load_profiles()[profile_name]
    assert dot_width(profile.columns) == dots
    png = receipt_png(RECEIPT, columns=profile.columns, codepage=profile.codepage, profile=profile.escpos_profile)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(png)).size[0] == dots


@pytest.mark.parametrize("columns", [42, 48])
def test_the_picture_is_the_layout_line_by_line(columns):
    image = receipt_image(RECEIPT, columns=columns)
    lines = layout(RECEIPT, columns)
    found = [(text, style) for _, text, style in _bands(image, lines, columns)]
    assert found == lines
    # Below the last line: blank paper, then the dashed cut line at the very bottom.
    last = _bands(image, lines, columns)[-1][0] + LINE_PITCH
    assert ink(image, (0, last, image.width, image.height - 2)) == 0
    bottom = [image.getpixel((x, image.height - 1)) for x in range(image.width)]
    assert 0 < bottom.count(255) < image.width


def _bands(image, lines, columns):
    """(y, text, style) of each layout line in ``image``, found by matching its own
    rendering at the next y: fails when the picture is not the layout, in order."""
    found, y = [], TOP_MARGIN
    for text, style in lines:
        line = line_image(text, style, columns)
        band = image.crop((0, y, image.width, y + line.height))
        assert ImageChops.difference(band, line).getbbox() is None, f"line {text!r} is not drawn at y={y}"
        found.append((y, text, style))
        y += line.height
    return found


def band_of(image, prefix: str, columns: int = 42):
    for y, text, style in _bands(image, layout(RECEIPT, columns), columns):
        if text.startswith(prefix):
            return y, text, style
    raise AssertionError(prefix)


@pytest.mark.parametrize("prefix", ["Ticket S001-L1-7", "TOTAL EUR", "Subtotal"])
def test_a_cell_has_ink_exactly_where_the_line_has_a_character(prefix):
    image = receipt_image(RECEIPT)
    y, text, style = band_of(image, prefix)
    height = 2 * CELL_HEIGHT if style == BIG else CELL_HEIGHT
    for col in range(42):
        ch = text[col] if col < len(text) else " "
        # The cell's inner 10 dots: a bold glyph's second strike may reach one dot into the next cell.
        printed = ink(image, (col * CELL + 1, y, col * CELL + CELL - 1, y + height)) > 0
        assert printed == (not ch.isspace()), (prefix, col, ch)
    assert "S001-L1-7" in text or "10.07" in text or "11.07" in text


def test_a_changed_total_changes_only_the_total_line():
    before = receipt_image(RECEIPT)
    after = receipt_image(receipt(total="99.99"))
    y, text, style = band_of(before, "TOTAL EUR")
    assert style == BIG and text.endswith("10.07")
    changed = ImageChops.difference(before, after).getbbox()
    assert changed is not None
    left, top, right, bottom = changed
    assert y <= top and bottom <= y + 2 * CELL_HEIGHT
    assert left >= (42 - len("99.99")) * CELL  # only the amount's cells, at the right edge


def test_the_ticket_number_is_on_the_ticket_line_and_in_the_barcode():
    before = receipt_image(RECEIPT)
    after = receipt_image(receipt(ticket="S001-L1-8", barcode="S001-L1-8"))
    ticket_y = band_of(before, "Ticket")[0]
    barcode_y = next(y for y, _, style in _bands(before, layout(RECEIPT, 42), 42) if style == BARCODE)
    diff = ImageChops.difference(before, after)
    rows_changed = {y for y in range(before.height) if diff.crop((0, y, before.width, y + 1)).getbbox()}
    assert rows_changed and all(ticket_y <= y < ticket_y + LINE_PITCH or y >= barcode_y for y in rows_changed)
    assert any(ticket_y <= y < ticket_y + LINE_PITCH for y in rows_changed)


def test_the_total_is_printed_big_and_bold():
    image = receipt_image(RECEIPT)
    y, text, style = band_of(image, "TOTAL EUR")
    total = ink(image, (0, y, image.width, y + 2 * CELL_HEIGHT))
    normal = ink(line_image(text, NORMAL))
    # Double height alone doubles the ink; emphasized (each glyph struck twice) adds more.
    assert total > 2.4 * normal
    # The band really is two cells high: ink in both its upper and lower half.
    assert ink(image, (0, y, image.width, y + CELL_HEIGHT)) > 0
    assert ink(image, (0, y + CELL_HEIGHT, image.width, y + 2 * CELL_HEIGHT)) > 0


def test_a_longer_receipt_is_taller_by_its_lines():
    short = receipt_image(RECEIPT)
    extra = [{"sku": str(i), "description": f"Item {i}", "qty": "1", "unit_price": "1.00", "amount": "1.00",
              "tax_rate": "4.00"} for i in range(20)]
    long = receipt_image(receipt(lines=RECEIPT["lines"] + extra))
    assert long.width == short.width
    assert long.height == short.height + 20 * LINE_PITCH


def test_a_character_the_code_page_lacks_prints_as_a_question_mark():
    store = dict(RECEIPT["store"], name="Tienda 中 Ñandú")
    missing = receipt_image(receipt(store=store))
    question = receipt_image(receipt(store=dict(store, name="Tienda ? Ñandú")))
    assert ImageChops.difference(missing, question).getbbox() is None
    # Characters cp858 has are drawn as themselves, not as "?": Ñ, ú, € (cp858's 0xD5).
    for text in ("Tienda ? Ñandú", "Tienda ? €"):
        drawn = receipt_image(receipt(store=dict(store, name=text)))
        as_questions = text.translate(str.maketrans("Ñú€", "???"))
        asked = receipt_image(receipt(store=dict(store, name=as_questions)))
        assert ImageChops.difference(drawn, asked).getbbox() is not None
    # In cp437 (no euro sign) the euro becomes "?".
    euro = receipt_image(receipt(store=dict(store, name="Tienda €")), codepage="cp437")
    asked = receipt_image(receipt(store=dict(store, name="Tienda ?")), codepage="cp437")
    assert ImageChops.difference(euro, asked).getbbox() is None


def test_the_picture_has_the_characters_the_printer_is_sent():
    odd = receipt(store=dict(RECEIPT["store"], name="Tienda 中 € ő"), footer="Grüße ✓")
    sent = render_receipt(odd, width=42, codepage="cp858")
    for text, style in layout(odd, 42):
        if style != BARCODE:
            shown = printed_text(text, "cp858")
            assert shown.encode("cp858") + b"\n" in sent, shown
    assert printed_text("Tienda 中 € ő") == "Tienda ? € ?" and printed_text("Grüße ✓") == "Grüße ?"


def test_the_barcode_bars_decode_to_the_ticket():
    image = receipt_image(RECEIPT)
    y = next(y for y, _, style in _bands(image, layout(RECEIPT, 42), 42) if style == BARCODE)
    row = [image.getpixel((x, y + 10)) for x in range(image.width)]
    bits = "".join("1" if value < 128 else "0" for value in row).strip("0")
    module = barcode_module_width("S001-L1-7", 42)
    assert module == 3 and len(bits) % module == 0
    modules = bits[::module]
    assert bits == "".join(m * module for m in modules)  # every module is `module` dots wide
    assert modules == code128b_modules("S001-L1-7")
    symbols = [modules[i:i + 11] for i in range(0, len(modules) - 13, 11)]
    values = [CODES.index(s) for s in symbols]
    assert values[0] == 104  # start code B
    data, check = values[1:-1], values[-1]
    assert "".join(chr(v + 32) for v in data) == "S001-L1-7"
    assert check == (104 + sum(i * v for i, v in enumerate(data, 1))) % 103
    assert modules[-13:] == "1100011101011"  # the stop pattern
    # Centred on the paper.
    left = next(x for x, v in enumerate(row) if v < 128)
    right = image.width - 1 - max(x for x, v in enumerate(row) if v < 128)
    assert abs(left - right) <= 1


def test_a_barcode_too_wide_for_the_paper_is_not_drawn():
    long = "X" * 60  # 11 * 62 + 13 modules: wider than 504 dots even at 2 dots a module
    with_bars = receipt_image(receipt(barcode="S001-L1-7"))
    without = receipt_image(receipt(barcode=long))
    assert BARCODE in [style for _, style in layout(receipt(barcode=long), 42)]
    assert without.height < with_bars.height


def test_the_cli_draws_a_print_job_or_a_bare_receipt(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"v": 1, "job": "j-1", "receipt": RECEIPT}), encoding="utf-8")
    out = tmp_path / "receipt.png"
    result = run_lanehub("devices", "receipt", str(job), "-o", str(out), "--profile", "file-printer")
    assert "576 dots wide" in result.stdout
    assert Image.open(out).size[0] == 576
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(RECEIPT), encoding="utf-8")
    run_lanehub("devices", "receipt", str(bare), "-o", str(out), "--columns", "32")
    assert Image.open(out).size[0] == 384
    assert out.read_bytes() == receipt_png(RECEIPT, columns=32)


@pytest.mark.parametrize("content, args, problem", [
    ("{not json", [], "not valid JSON"),
    ("[1, 2]", [], "not a print job or a receipt"),
    ('{"v": 1, "job": "x", "receipt": "text"}', [], "not a print job or a receipt"),
    (json.dumps(RECEIPT), ["--profile", "zebra-ls2208-hid"], "no printer profile"),
    (json.dumps(RECEIPT), ["--codepage", "no-such-page"], "cannot be used"),
])
def test_the_cli_refuses_bad_input_with_one_line(tmp_path, content, args, problem):
    job = tmp_path / "job.json"
    job.write_text(content, encoding="utf-8")
    result = run_lanehub("devices", "receipt", str(job), "-o", str(tmp_path / "r.png"), *args, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.png").exists()
