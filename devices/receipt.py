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
"""

from __future__ import annotations

import contextlib
import io
import textwrap
import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation

from escpos.printer import Dummy

__all__ = ["render_receipt", "text_lines"]

_NORMAL, _BOLD, _BIG, _BARCODE = "normal", "bold", "big", "barcode"
_MAX_DESC_LINES = 2  # a long description wraps once, then is truncated
_DOTS_PER_COLUMN = 12  # font A is 12 dots wide on common 180/203 dpi printers


def _clean(value) -> str:
    """Text from the receipt as printable, single-column characters.

    Control characters are replaced so that data (a product description,
    a customer name) can never inject ESC/POS commands or break the layout;
    NFC folds decomposed accents (``n`` + combining tilde) into one column.
    """
    text = unicodedata.normalize("NFC", "" if value is None else str(value))
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text
    ).strip()


def _center(text: str, width: int) -> list[str]:
    return [part.center(width).rstrip() for part in textwrap.wrap(text, width)]


def _left_right(left: str, right: str, width: int) -> str:
    """``left`` … ``right`` with ``right`` ending exactly at column ``width``."""
    right = right[:width]
    room = width - len(right) - 1
    left = left[:room] if room > 0 else ""
    return left + " " * (width - len(left) - len(right)) + right


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _qty(value) -> str:
    number = _decimal(value)
    if number is not None and number == number.to_integral_value():
        return str(int(number))
    return _clean(value)


def _date(value) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return _clean(value)


def _item_lines(line: dict, width: int) -> list[str]:
    amount = _clean(line.get("amount"))
    description = _clean(line.get("description")) or _clean(line.get("sku"))
    room = max(1, width - len(amount) - 1)
    parts = textwrap.wrap(description, room, break_long_words=True) or [""]
    out = [_left_right(parts[0], amount, width)] + parts[1:_MAX_DESC_LINES]
    qty = _decimal(line.get("qty", 1))
    if qty is None or qty != 1:
        detail = f"  {_qty(line.get('qty'))} x {_clean(line.get('unit_price'))}"
        out.append(detail[:width])
    return out


def _barcode_data(receipt: dict) -> str | None:
    """The barcode payload, or None when CODE128 set B cannot encode it."""
    data = _clean(receipt.get("barcode") or receipt.get("ticket"))
    if not data or len(data) > 120 or any(not 32 <= ord(ch) < 127 for ch in data):
        return None
    return data


def _layout(receipt: dict, width: int) -> list[tuple[str, str]]:
    if width < 16:
        raise ValueError(f"width must be at least 16 columns, got {width}")
    rule = "-" * width
    out: list[tuple[str, str]] = []
    add = out.append

    store = receipt.get("store") or {}
    out += [(text, _BOLD) for text in _center(_clean(store.get("name")), width)]
    out += [(text, _NORMAL) for text in _center(_clean(store.get("address")), width)]
    if store.get("tax_id"):
        out += [(t, _NORMAL) for t in _center(f"Tax ID: {_clean(store['tax_id'])}", width)]
    add((rule, _NORMAL))
    add((_left_right(f"Ticket {_clean(receipt.get('ticket'))}",
                     f"Lane {_clean(receipt.get('lane'))}", width), _NORMAL))
    add((_date(receipt.get("closed_at")), _NORMAL))
    add((rule, _NORMAL))

    for line in receipt.get("lines") or []:
        out += [(text, _NORMAL) for text in _item_lines(line, width)]
    add((rule, _NORMAL))

    add((_left_right("Subtotal", _clean(receipt.get("subtotal")), width), _NORMAL))
    coupon = receipt.get("coupon")
    if coupon:
        discount = _decimal(coupon.get("discount"))  # shown negative, whatever its sign
        shown = "-" + (str(abs(discount)) if discount is not None
                       else _clean(coupon.get("discount")))
        add((_left_right(f"Coupon {_clean(coupon.get('code'))}", shown, width), _NORMAL))
    currency = _clean(receipt.get("currency"))
    add((_left_right(f"TOTAL {currency}".strip(), _clean(receipt.get("total")), width), _BIG))
    add((rule, _NORMAL))

    taxes = receipt.get("taxes") or []
    if taxes:
        c2 = c3 = width // 3
        c1 = width - c2 - c3
        add(("Tax %".ljust(c1) + "Base".rjust(c2) + "Tax".rjust(c3), _NORMAL))
        for tax in taxes:
            add((f"{_clean(tax.get('rate'))}%".ljust(c1)
                 + _clean(tax.get("base")).rjust(c2)
                 + _clean(tax.get("tax")).rjust(c3), _NORMAL))
        add((rule, _NORMAL))

    customer = receipt.get("customer")
    if customer:
        for label, key in (("Customer", "name"), ("Code", "code"), ("Tax ID", "tax_id")):
            if customer.get(key):
                add((f"{label}: {_clean(customer[key])}"[:width], _NORMAL))
        add((rule, _NORMAL))

    data = _barcode_data(receipt)
    if data is not None:
        # The printed HRI text under the bars; in the plain text it stands in
        # for the barcode.
        add((data.center(width).rstrip(), _BARCODE))
    out += [(text, _NORMAL) for text in _center(_clean(receipt.get("footer")), width)]
    return out


def text_lines(receipt: dict, width: int = 42) -> list[str]:
    """The receipt as the plain-text lines that ``render_receipt`` prints."""
    return [text for text, _style in _layout(receipt, width)]


def _print_barcode(printer: Dummy, data: str, width: int) -> None:
    # CODE128 set B: 11 modules per character plus start and check
    # characters, 13 for the stop pattern.  Thinner bars when 3-dot modules
    # would not fit the paper (a too wide barcode is silently not printed).
    modules = 11 * (len(data) + 2) + 13
    module_width = 3 if modules * 3 <= width * _DOTS_PER_COLUMN else 2
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
    receipt: dict,
    *,
    width: int = 42,
    codepage: str = "cp858",
    profile: str = "default",
    cut: bool = True,
) -> bytes:
    """ESC/POS bytes for ``receipt`` on a printer with ``width`` columns.

    Raises ValueError when ``profile`` does not know ``codepage``.
    """
    printer = Dummy(profile=profile)
    encoding = printer.magic.encoder.get_encoding_name(codepage)
    printer.hw("INIT")  # ESC @: also resets the code page, so it goes first
    printer.charcode(encoding)
    for text, style in _layout(receipt, width):
        if style == _BARCODE:
            _print_barcode(printer, text.strip(), width)
        elif style == _BOLD:
            printer.set(bold=True)
            printer.textln(text)
            printer.set(bold=False)
        elif style == _BIG:
            printer.set(bold=True, double_height=True)
            printer.textln(text)
            printer.set(bold=False, normal_textsize=True)
        else:
            printer.textln(text)
    if cut:
        printer.cut()  # feeds 6 lines (ESC d 6) then GS V 0
    return printer.output
