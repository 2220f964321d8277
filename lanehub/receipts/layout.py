"""A receipt's layout: the lines a receipt printer prints, column for column.

One layout, three renderers that cannot drift apart: the ESC/POS bytes a
printer bridge sends (``devices.printer.receipt``), the picture of a receipt
(``lanehub.receipts.image``: the store page, e-mailed receipts, the simulated
printer) and the plain text of an e-mailed receipt (``text_lines``).

``layout()`` gives each line with its style: normal, bold, big (bold, double
height) or the barcode (its text is the human-readable line printed under the
bars). Centring is done with spaces (the printer stays left aligned), so
``width`` must be the printer's column count for font A. Text from the receipt
is cleaned of control characters, so data (a product description, a customer
name) can never inject printer commands or break the layout.

Each takes a ``lanehub.protocol.lane.Receipt`` or a receipt's JSON object (a
print job's, a stored one), read once with ``Receipt.of``.
"""

from __future__ import annotations

import textwrap
import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation

from lanehub.protocol.lane import Receipt, ReceiptLine

__all__ = ["BARCODE", "BIG", "BOLD", "DOTS_PER_COLUMN", "NORMAL", "barcode_module_width", "layout",
           "printed_text", "text_lines"]

NORMAL, BOLD, BIG, BARCODE = "normal", "bold", "big", "barcode"
_MAX_DESC_LINES = 2  # a long description wraps once, then is truncated
DOTS_PER_COLUMN = 12  # font A is 12 dots wide on common 180/203 dpi printers


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


def _item_lines(line: ReceiptLine, width: int) -> list[str]:
    amount = _clean(line.amount)
    description = _clean(line.description) or _clean(line.sku)
    room = max(1, width - len(amount) - 1)
    parts = textwrap.wrap(description, room, break_long_words=True) or [""]
    out = [_left_right(parts[0], amount, width)] + parts[1:_MAX_DESC_LINES]
    qty = _decimal(line.qty)
    if qty is None or qty != 1:
        detail = f"  {_qty(line.qty)} x {_clean(line.unit_price)}"
        out.append(detail[:width])
    return out


def _barcode_data(receipt: Receipt) -> str | None:
    """The barcode payload, or None when CODE128 set B cannot encode it."""
    data = _clean(receipt.barcode or receipt.ticket)
    if not data or len(data) > 120 or any(not 32 <= ord(ch) < 127 for ch in data):
        return None
    return data


def layout(receipt: Receipt | dict, width: int) -> list[tuple[str, str]]:
    """The receipt as ``(text, style)`` lines, ``width`` columns wide."""
    if width < 16:
        raise ValueError(f"width must be at least 16 columns, got {width}")
    receipt = Receipt.of(receipt)
    rule = "-" * width
    out: list[tuple[str, str]] = []
    add = out.append

    store = receipt.store
    out += [(text, BOLD) for text in _center(_clean(store.name), width)]
    out += [(text, NORMAL) for text in _center(_clean(store.address), width)]
    if store.tax_id:
        out += [(t, NORMAL) for t in _center(f"Tax ID: {_clean(store.tax_id)}", width)]
    add((rule, NORMAL))
    add((_left_right(f"Ticket {_clean(receipt.ticket)}", f"Lane {_clean(receipt.lane)}", width), NORMAL))
    add((_date(receipt.closed_at), NORMAL))
    add((rule, NORMAL))

    for line in receipt.lines:
        out += [(text, NORMAL) for text in _item_lines(line, width)]
    add((rule, NORMAL))

    add((_left_right("Subtotal", _clean(receipt.subtotal), width), NORMAL))
    coupon = receipt.coupon
    if coupon:
        discount = _decimal(coupon.discount)  # shown negative, whatever its sign
        shown = "-" + (str(abs(discount)) if discount is not None else _clean(coupon.discount))
        add((_left_right(f"Coupon {_clean(coupon.code)}", shown, width), NORMAL))
    currency = _clean(receipt.currency)
    add((_left_right(f"TOTAL {currency}".strip(), _clean(receipt.total), width), BIG))
    add((rule, NORMAL))

    if receipt.taxes:
        c2 = c3 = width // 3
        c1 = width - c2 - c3
        add(("Tax %".ljust(c1) + "Base".rjust(c2) + "Tax".rjust(c3), NORMAL))
        for tax in receipt.taxes:
            add((f"{_clean(tax.rate)}%".ljust(c1) + _clean(tax.base).rjust(c2) + _clean(tax.tax).rjust(c3), NORMAL))
        add((rule, NORMAL))

    customer = receipt.customer
    if customer:
        for label, value in (("Customer", customer.name), ("Code", customer.code), ("Tax ID", customer.tax_id)):
            if value:
                add((f"{label}: {_clean(value)}"[:width], NORMAL))
        if customer.address:  # wrapped: an address is often wider than the paper
            for part in textwrap.wrap(f"Address: {_clean(customer.address)}", width, subsequent_indent="  "):
                add((part, NORMAL))
        add((rule, NORMAL))

    data = _barcode_data(receipt)
    if data is not None:
        # The printed HRI text under the bars; in the plain text it stands in
        # for the barcode.
        add((data.center(width).rstrip(), BARCODE))
    out += [(text, NORMAL) for text in _center(_clean(receipt.footer), width)]
    return out


def text_lines(receipt: Receipt | dict, width: int = 42) -> list[str]:
    """The receipt as the plain-text lines that ``render_receipt`` prints."""
    return [text for text, _style in layout(receipt, width)]


def barcode_module_width(data: str, width: int) -> int:
    """Dots per CODE128 module for ``data`` on ``width`` columns of paper."""
    # CODE128 set B: 11 modules per character plus start and check
    # characters, 13 for the stop pattern.  Thinner bars when 3-dot modules
    # would not fit the paper (a too wide barcode is silently not printed).
    modules = 11 * (len(data) + 2) + 13
    return 3 if modules * 3 <= width * DOTS_PER_COLUMN else 2


def printed_text(text: str, codepage: str = "cp858", profile: str = "default") -> str:
    """``text`` as the printer shows it in ``codepage``: python-escpos's forced
    encoding sends "?" for a character the code page lacks (see above).

    Raises ValueError when ``profile`` does not know ``codepage``.
    """
    from escpos.printer import Dummy  # imported on use: the layout itself needs no printer library

    encoder = Dummy(profile=profile).magic.encoder
    encoding = encoder.get_encoding_name(codepage)
    return "".join(ch if encoder.can_encode(encoding, ch) else "?" for ch in text)
