"""A receipt as a picture: the print job's ``receipt`` drawn the way the
receipt printer prints it, as a PNG (the device simulator's "paper", the
store page's receipts, e-mailed receipts, the docs).

Why it cannot drift from the paper: it draws ``lanehub.receipts.layout.layout()``,
the very lines and styles ``devices.printer.receipt.render_receipt`` sends, and every line goes
through ``printed_text()``, the code page logic of the ESC/POS bytes (a
character the code page lacks is a "?", as on paper).

The geometry is the printer's, one pixel per dot:

* the width is the paper's dot width: ``columns`` cells of font A, each
  ``DOTS_PER_COLUMN`` (12) dots wide and 24 dots high, each glyph in its own
  cell (the printer's columns never drift, whatever the font's advance);
* lines are 30 dots apart: ESC/POS's default line spacing (1/6 inch at 180 dpi);
* bold is the printer's emphasized mode, each glyph struck twice one dot
  apart; big is bold at double height, the glyph stretched to two cells high;
* the barcode is CODE128 code set B (``{B`` in ``render_receipt``), with the
  same module width and height, centred, its text under the bars;
* the picture ends with a dashed line where the cutter cuts.

The font is DejaVu Sans Mono, shipped in ``lanehub/receipts/fonts/`` with its licence,
so a store box needs no system font.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from barcode.charsets.code128 import CODES, START_CODES, STOP
from PIL import Image, ImageDraw, ImageFont

from lanehub.protocol.lane import Receipt
from lanehub.receipts.layout import BARCODE, BIG, BOLD, DOTS_PER_COLUMN, barcode_module_width, layout, printed_text

__all__ = ["FONT_PATH", "LINE_PITCH", "code128b_modules", "dot_width", "line_image", "receipt_image", "receipt_png"]

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSansMono.ttf"
FONT_SIZE = 20  # DejaVu Sans Mono at 20 px: 12.05 px advance, ascent + descent = 24: one font A cell
CELL_HEIGHT = 24
LINE_PITCH = 30
BIG_PITCH = 2 * CELL_HEIGHT + (LINE_PITCH - CELL_HEIGHT)
BARCODE_HEIGHT = 64  # render_receipt's barcode(height=64)
TOP_MARGIN = 12
# render_receipt feeds 6 lines before the cut, but the cutter sits some 15 mm
# past the print head: about two lines of blank paper are left below the text.
CUT_FEED = 2 * LINE_PITCH
INK, PAPER = 0, 255


def dot_width(columns: int) -> int:
    """The paper's printable width in dots (= pixels) for ``columns`` of font A."""
    return columns * DOTS_PER_COLUMN


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), FONT_SIZE)


@lru_cache(maxsize=4096)
def _glyph(ch: str, bold: bool) -> Image.Image:
    """One character's cell (ink as 255) to paste as a mask; bold strikes it twice."""
    cell = Image.new("L", (DOTS_PER_COLUMN, CELL_HEIGHT), 0)
    draw = ImageDraw.Draw(cell)
    for dx in (0, 1) if bold else (0,):
        draw.text((dx, 0), ch, font=_font(), fill=255, anchor="la")
    return cell


def _text_row(text: str, columns: int, bold: bool) -> Image.Image:
    row = Image.new("L", (dot_width(columns), CELL_HEIGHT), PAPER)
    for col, ch in enumerate(text[:columns]):
        if not ch.isspace():
            row.paste(INK, (col * DOTS_PER_COLUMN, 0), _glyph(ch, bold))
    return row


def code128b_modules(data: str) -> str:
    """``data`` in CODE128 code set B as modules, "1" a bar and "0" a space:
    start B, one symbol per character, the check symbol, the stop pattern."""
    values = [START_CODES["B"]] + [ord(ch) - 32 for ch in data]
    check = (values[0] + sum(i * v for i, v in enumerate(values[1:], 1))) % 103
    # python-barcode's STOP lacks the stop symbol's final 2-module bar.
    return "".join(CODES[v] for v in [*values, check]) + STOP + "11"


def _barcode(data: str, hri: str, columns: int) -> Image.Image | None:
    modules = code128b_modules(data)
    module = barcode_module_width(data, columns)
    width = dot_width(columns)
    if len(modules) * module > width:
        return None  # the printer silently prints nothing for a barcode wider than the paper
    image = Image.new("L", (width, BARCODE_HEIGHT + (LINE_PITCH - CELL_HEIGHT) + LINE_PITCH), PAPER)
    draw = ImageDraw.Draw(image)
    left = (width - len(modules) * module) // 2
    for i, bit in enumerate(modules):
        if bit == "1":
            x = left + i * module
            draw.rectangle((x, 0, x + module - 1, BARCODE_HEIGHT - 1), fill=INK)
    image.paste(_text_row(hri, columns, False), (0, BARCODE_HEIGHT + LINE_PITCH - CELL_HEIGHT))
    return image


def line_image(text: str, style: str, columns: int = 42, codepage: str = "cp858",
               profile: str = "default") -> Image.Image | None:
    """One layout line as printed (its line spacing included), or None for a
    barcode the printer would not print. ``receipt_image`` stacks these."""
    shown = printed_text(text, codepage, profile)
    if style == BARCODE:
        return _barcode(text.strip(), shown, columns)
    width = dot_width(columns)
    if style == BIG:
        tall = _text_row(shown, columns, True).resize((width, 2 * CELL_HEIGHT), Image.Resampling.NEAREST)
        image = Image.new("L", (width, BIG_PITCH), PAPER)
        image.paste(tall, (0, 0))
        return image
    image = Image.new("L", (width, LINE_PITCH), PAPER)
    image.paste(_text_row(shown, columns, style == BOLD), (0, 0))
    return image


def receipt_image(receipt: Receipt | dict, *, columns: int = 42, codepage: str = "cp858",
                  profile: str = "default") -> Image.Image:
    """``receipt`` (a Receipt, or a print job's ``receipt`` object: ``Receipt.of``) as a
    greyscale image ``dot_width(columns)`` wide.

    Raises ValueError for fewer than 16 columns or a code page ``profile`` lacks.
    """
    images = [line_image(text, style, columns, codepage, profile) for text, style in layout(receipt, columns)]
    rows = [row for row in images if row is not None]
    width = dot_width(columns)
    height = TOP_MARGIN + sum(row.height for row in rows) + CUT_FEED + 2
    image = Image.new("L", (width, height), PAPER)
    y = TOP_MARGIN
    for row in rows:
        image.paste(row, (0, y))
        y += row.height
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 16):  # the cut
        draw.rectangle((x, height - 2, x + 7, height - 1), fill=128)
    return image


def receipt_png(receipt: Receipt | dict, *, columns: int = 42, codepage: str = "cp858", profile: str = "default") -> bytes:
    """``receipt_image`` as PNG bytes."""
    out = io.BytesIO()
    receipt_image(receipt, columns=columns, codepage=codepage, profile=profile).save(out, format="PNG", optimize=True)
    return out.getvalue()
