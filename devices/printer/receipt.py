"""Render a closed ticket's receipt to ESC/POS bytes (python-escpos 3.1).

Why two layers: ``text_lines()`` is the whole layout as plain text -- exactly
the characters that are printed, column for column -- so the layout can be
tested and logged without parsing ESC/POS.  ``render_receipt()`` sends those
same lines and only adds styling (bold, double height), the CODE128 barcode
and the cut.  Centring is done with spaces (the printer stays left aligned),
so ``width`` must be the printer's column count for font A.

python-escpos 3.1 details relied on (see escpos/escpos.py, magicencode.py):

* ``charcode("cp858")`` raises ``KeyError``: ``MagicEncode.force_encoding``
  does not normalise the name, the profile's code page table is keyed
  ``"CP858"``.  We validate/normalise with ``magic.encoder.get_encoding_name``
  (ValueError if the profile lacks the code page) and emit ``ESC t n`` right
  after ``ESC @`` (which resets the code page).  In forced mode characters
  missing from the code page are printed as ``?`` instead of raising.
* ``barcode(..., "CODE128")`` checks the data against ``^\\{[A-C]...`` -- the
  code set selector ``{B`` is required, and a literal ``{`` must be doubled.
  It prints "Using hardware barcode renderer" on stdout, which we swallow.
* Double *height* only: double width would halve the columns and break the
  right-aligned amount column.

The layout itself (``layout``, ``text_lines``, ``printed_text``) is
``lanehub.receipts.layout``, shared with the receipt picture and e-mailed receipts.
"""

from __future__ import annotations

import contextlib
import io

from escpos.printer import Dummy

from lanehub.protocol.lane import Receipt
from lanehub.receipts.layout import BARCODE, BIG, BOLD, barcode_module_width, layout, text_lines

__all__ = ["render_receipt", "text_lines"]


def _print_barcode(printer: Dummy, data: str, width: int) -> None:
    module_width = barcode_module_width(data, width)
    with contextlib.redirect_stdout(io.StringIO()):  # 3.1 print()s the renderer
        printer.barcode(
            "{B" + data.replace("{", "{{"),
            "CODE128",
            height=64,
            width=module_width,
            pos="BELOW",
            function_type="B",
        )
    printer.set(align="left")  # barcode() leaves the alignment centred


def render_receipt(
    receipt: Receipt | dict,
    *,
    width: int = 42,
    codepage: str = "cp858",
    profile: str = "default",
    cut: bool = True,
) -> bytes:
    """ESC/POS bytes for ``receipt`` (a Receipt, or a print job's receipt object:
    ``Receipt.of``) on a printer with ``width`` columns.

    Raises ValueError when ``profile`` does not know ``codepage``, PayloadError (a
    ValueError) for a receipt that is not one.
    """
    printer = Dummy(profile=profile)
    encoding = printer.magic.encoder.get_encoding_name(codepage)
    printer.hw("INIT")  # ESC @: also resets the code page, so it goes first
    printer.charcode(encoding)
    for text, style in layout(receipt, width):
        if style == BARCODE:
            _print_barcode(printer, text.strip(), width)
        elif style == BOLD:
            printer.set(bold=True)
            printer.textln(text)
            printer.set(bold=False)
        elif style == BIG:
            printer.set(bold=True, double_height=True)
            printer.textln(text)
            printer.set(bold=False, normal_textsize=True)
        else:
            printer.textln(text)
    if cut:
        printer.cut()  # feeds 6 lines (ESC d 6) then GS V 0
    return printer.output
