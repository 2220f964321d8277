"""What a scanned code means: its symbology, the code to look up, what the label carries.

``parse_scan(code, symbology, layouts)`` turns one scan into a ``ScannedCode``.
Stores scan, beyond plain product barcodes:

* **AIM symbology identifiers** (ISO/IEC 15424): a scanner may prefix each scan
  with ``]`` + a code character + a modifier digit, ``]E0`` EAN-13, ``]C1``
  GS1-128... The identifiers in ``AIM_SYMBOLOGIES`` are always recognised and
  stripped (``split_aim``); ``devices.readers.keymap.strip_aim`` uses this same table.
* **GS1 element strings** (GS1-128 ``]C1``, GS1 DataBar ``]e0``, GS1 DataMatrix
  ``]d2``, GS1 QR ``]Q3``; or written with brackets, ``(01)09501101530003``):
  application identifiers (AIs) with their data; a variable-length AI that is
  not last ends with FNC1, sent as ASCII GS (0x1D). Understood: 01/02 (GTIN,
  looked up; a GTIN-14 is also tried as GTIN-13, -12 and -8 when its leading
  digits are 0), 10 batch, 11-17 dates, 21 serial, 30/37 count, 310n net
  weight in kg (n decimals), 320n net weight in lb (converted to kg, rounded
  to the gram), 392n price payable (n decimals), 393n price payable with its
  ISO 4217 currency, and a few logistic AIs kept as they are (``AIS``). An AI
  not in that table is refused ("unknown application identifier"), as is a
  code without a GTIN to look up.
* **Variable-measure EAN-13** (scale labels, restricted-circulation prefixes 02
  and 20-29). What the digits mean is local, so each store lists its layouts.
  A layout is a picture of the 13 digits, one character per digit:

  ========  =========================================================
  digits    the prefix, literally (at least two: 02 or 20-29), first
  ``P``     the item code (PLU)
  ``W``     the weight in grams
  ``$``     the price in hundredths (cents)
  ``V``     optional: the price/weight verifier digit over 4 or 5 W/$
            digits (GS1 General Specifications 7.9.3)
  ``C``     the EAN-13 check digit, last
  ========  =========================================================

  e.g. ``20PPPPPWWWWWC`` (item 5 digits, grams 5 digits), ``22PPPPP$$$$$C``
  (price up to 999.99), ``23PPPPPV$$$$C`` (price up to 99.99 with its verifier).
  A label is looked up by, in order: the label with its W/$/V digits zeroed and
  its check digit recomputed (2012345012509, 1.250 kg -> 2012345000001: how scale PLUs
  are kept as barcodes), then the item code digits alone (12345, as a barcode
  or a SKU). The longest matching prefix wins.

Check digits (GTIN mod 10) are verified for EAN/UPC scans, GS1 GTINs and GLNs,
and scale labels: a bad one is refused ("bad check digit"). A code of unknown
symbology that matches no layout is looked up exactly as scanned, unchecked:
catalogues hold in-store codes that are not GTINs.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Sequence

GS = "\x1d"  # FNC1 as scanners transmit it: ends a variable-length AI
GRAM = Decimal("0.001")
KG_PER_LB = Decimal("0.45359237")  # exact, by definition

# AIM symbology identifiers: "]" + code character + modifier -> the name scans report.
AIM_SYMBOLOGIES: dict[str, str] = {
    "E0": "EAN-13 / UPC-A", "E3": "EAN-13 / UPC-A + add-on", "E4": "EAN-8",
    "C0": "Code 128", "C1": "GS1-128", "A0": "Code 39", "F0": "Codabar",
    "I0": "ITF", "I1": "ITF", "e0": "GS1 DataBar", "L0": "PDF417",
    "d1": "Data Matrix", "d2": "GS1 DataMatrix",
    **{f"Q{m}": "QR Code" for m in "123456"},
}
# Identifiers (and names) whose data is a GS1 element string. QR's name is shared
# by Q1-Q6, so a GS1 QR code is known as one only by its "]Q3" identifier.
GS1_AIM_IDS = frozenset({"C1", "e0", "d2", "Q3"})
GS1_SYMBOLOGIES = frozenset({"GS1-128", "GS1 DataBar", "GS1 DataMatrix"})
# EAN/UPC symbologies -> the lengths of their main code (UPC-A: 12 digits, or 13 with a leading 0).
EAN_SYMBOLOGIES = {"EAN-13 / UPC-A": (12, 13), "EAN-13 / UPC-A + add-on": (12, 13), "EAN-8": (8,)}

# ISO 4217 numeric -> alphabetic, for AI 393n (the currencies a lanehub store may sell in).
CURRENCIES = {
    "978": "EUR", "840": "USD", "826": "GBP", "756": "CHF", "752": "SEK", "578": "NOK", "208": "DKK",
    "985": "PLN", "203": "CZK", "348": "HUF", "946": "RON", "975": "BGN", "124": "CAD", "036": "AUD",
    "484": "MXN", "986": "BRL", "032": "ARS", "152": "CLP", "170": "COP", "604": "PEN", "392": "JPY",
}


class BarcodeError(ValueError):
    """A scan that cannot be read: the message says why, in one line."""


def split_aim(text: str) -> tuple[str, str]:
    """Split a known AIM identifier off a scan: ("]E0841..." -> ("EAN-13 / UPC-A", "841...")).

    Returns ("", text) unchanged when the scan does not start with one we know.
    """
    aim_id, rest = _split_aim_id(text)
    return (AIM_SYMBOLOGIES[aim_id], rest) if aim_id else ("", text)


def _split_aim_id(text: str) -> tuple[str, str]:
    if len(text) >= 3 and text[0] == "]" and text[1].isalpha() and text[2].isdigit() and text[1:3] in AIM_SYMBOLOGIES:
        return text[1:3], text[3:]
    return "", text


# --- check digits -----------------------------------------------------------------------

def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for ``body`` (a GTIN, GLN or SSCC without its last digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def verify_check_digit(code: str) -> None:
    """Refuse a numeric code whose last digit is not its GS1 check digit."""
    if len(code) < 2 or not code.isdigit():
        raise BarcodeError(f"{_show(code)} is not a number with a check digit")
    expected = gtin_check_digit(code[:-1])
    if int(code[-1]) != expected:
        raise BarcodeError(f"bad check digit: {code} should end in {expected}")


# Price/weight verifier weighting (GS1 General Specifications 7.9.3): per digit d,
# 2- = units of 2d minus its tens, 3 = units of 3d, 5+ = units of 5d plus its tens,
# 5- = units of 5d minus its tens.
_TWO_MINUS = (0, 2, 4, 6, 8, 9, 1, 3, 5, 7)
_THREE = (0, 3, 6, 9, 2, 5, 8, 1, 4, 7)
_FIVE_PLUS = (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)
_FIVE_MINUS = (0, 5, 9, 4, 8, 3, 7, 2, 6, 1)


def price_check_digit(digits: str) -> int:
    """The verifier digit of a 4- or 5-digit price or weight (2875 -> 9, 14685 -> 6)."""
    d = [int(c) for c in digits]
    if len(d) == 4:
        return (_TWO_MINUS[d[0]] + _TWO_MINUS[d[1]] + _THREE[d[2]] + _FIVE_MINUS[d[3]]) * 3 % 10
    if len(d) == 5:
        total = _FIVE_PLUS[d[0]] + _TWO_MINUS[d[1]] + _FIVE_MINUS[d[2]] + _FIVE_PLUS[d[3]] + _TWO_MINUS[d[4]]
        return _FIVE_MINUS.index((10 - total % 10) % 10)
    raise BarcodeError(f"a verifier digit is over 4 or 5 digits, not {len(d)}")


def gtin_lookup_keys(gtin: str) -> tuple[str, ...]:
    """The GTIN as given, then as GTIN-14, -13, -12 and -8 where its leading digits are
    zeros: a catalogue may hold 09501101530003 as 9501101530003, a UPC-A as 12 digits."""
    keys = [gtin]
    padded = gtin.zfill(14)
    for length in (14, 13, 12, 8):
        if padded[:14 - length].strip("0") == "" and padded[14 - length:] not in keys:
            keys.append(padded[14 - length:])
    return tuple(keys)


# --- scale label layouts ----------------------------------------------------------------

LAYOUT_LETTERS = "P (item code), W (grams), $ (hundredths), V (verifier digit), C (check digit)"


@dataclass(frozen=True)
class ScaleLayout:
    """One variable-measure EAN-13 layout, e.g. ``20PPPPPWWWWWC`` (see the module doc)."""

    picture: str
    prefix: str
    item: tuple[int, int]  # [start, end) of the item code
    measure: tuple[int, int]  # [start, end) of the weight or price digits
    measure_kind: str  # "weight" (grams) or "price" (hundredths)
    verifier: int | None = None  # where the price/weight verifier digit is

    @classmethod
    def parse(cls, picture: str) -> "ScaleLayout":
        if len(picture) != 13:
            raise BarcodeError(f"layout {picture!r} has {len(picture)} characters, not 13 (one per EAN-13 digit)")
        prefix_match = re.match(r"\d*", picture)
        assert prefix_match is not None  # \d* matches any string, if only its empty start
        prefix = prefix_match.group()
        if len(prefix) < 2 or not (prefix.startswith("02") or prefix[0] == "2"):
            raise BarcodeError(f"layout {picture!r} must start with its prefix, 02 or 20-29 (e.g. '20PPPPPWWWWWC')")
        unknown = sorted(set(picture[len(prefix):]) - set("PW$VC"))
        if unknown:
            raise BarcodeError(f"layout {picture!r}: unknown character {unknown[0]!r}; use {LAYOUT_LETTERS}")
        if picture.count("C") != 1 or picture[-1] != "C":
            raise BarcodeError(f"layout {picture!r}: the check digit C comes last, once")
        runs = {}
        for letter in "PW$V":
            at = [i for i, c in enumerate(picture) if c == letter]
            if at and at != list(range(at[0], at[-1] + 1)):
                raise BarcodeError(f"layout {picture!r}: the {letter} digits must be together")
            if at:
                runs[letter] = (at[0], at[-1] + 1)
        if "P" not in runs:
            raise BarcodeError(f"layout {picture!r} has no item code (P)")
        if ("W" in runs) == ("$" in runs):
            raise BarcodeError(f"layout {picture!r} needs weight digits (W) or price digits ($): one of them")
        kind, measure = ("weight", runs["W"]) if "W" in runs else ("price", runs["$"])
        verifier = None
        if "V" in runs:
            if runs["V"][1] - runs["V"][0] != 1 or measure[1] - measure[0] not in (4, 5):
                raise BarcodeError(f"layout {picture!r}: one verifier digit V, over 4 or 5 W/$ digits")
            verifier = runs["V"][0]
        return cls(picture, prefix, runs["P"], measure, kind, verifier)


def parse_layouts(pictures: Iterable[str]) -> tuple[ScaleLayout, ...]:
    """A store's layouts, longest prefix first (the one that wins); a prefix twice is refused."""
    layouts = [ScaleLayout.parse(p) for p in pictures]
    prefixes = [layout.prefix for layout in layouts]
    for prefix in prefixes:
        if prefixes.count(prefix) > 1:
            raise BarcodeError(f"two layouts for prefix {prefix}")
    return tuple(sorted(layouts, key=lambda layout: -len(layout.prefix)))


# --- GS1 application identifiers ---------------------------------------------------------

@dataclass(frozen=True)
class AISpec:
    title: str
    length: int  # the data's length when fixed, its maximum when variable
    fixed: bool = True
    numeric: bool = True
    check: str = ""  # "digit": ends in a GS1 check digit; "date": YYMMDD
    decimals: bool = False  # a 4-digit AI whose last digit is the decimal places (310n, 392n)


def _variable(title: str, length: int, numeric: bool = False, decimals: bool = False) -> AISpec:
    return AISpec(title, length, fixed=False, numeric=numeric, decimals=decimals)


# Keyed by the AI, or by its first three digits for the 310n-style families. No key
# is the start of another (GS1 keeps AIs prefix-free), so reading is unambiguous.
AIS: dict[str, AISpec] = {
    "00": AISpec("SSCC", 18, check="digit"),
    "01": AISpec("GTIN", 14, check="digit"),
    "02": AISpec("CONTENT", 14, check="digit"),
    "10": _variable("BATCH/LOT", 20),
    **{ai: AISpec(title, 6, check="date") for ai, title in (
        ("11", "PROD DATE"), ("12", "DUE DATE"), ("13", "PACK DATE"), ("15", "BEST BEFORE"),
        ("16", "SELL BY"), ("17", "USE BY"))},
    "20": AISpec("VARIANT", 2),
    "21": _variable("SERIAL", 20),
    "22": _variable("CPV", 20),
    "240": _variable("ADDITIONAL ID", 30),
    "241": _variable("CUST. PART No.", 30),
    "250": _variable("SECONDARY SERIAL", 30),
    "30": _variable("VAR. COUNT", 8, numeric=True),
    "310": AISpec("NET WEIGHT (kg)", 6, decimals=True),
    "320": AISpec("NET WEIGHT (lb)", 6, decimals=True),
    "37": _variable("COUNT", 8, numeric=True),
    "392": _variable("PRICE", 15, numeric=True, decimals=True),
    "393": _variable("PRICE + ISO", 18, numeric=True, decimals=True),
    "400": _variable("ORDER NUMBER", 30),
    **{f"41{n}": AISpec(title, 13, check="digit") for n, title in enumerate(
        ("SHIP TO LOC", "BILL TO", "PURCHASE FROM", "SHIP FOR LOC", "LOC No.", "PAY TO"))},
    "420": _variable("SHIP TO POST", 20),
    "422": AISpec("ORIGIN", 3),
    "7003": AISpec("EXPIRY TIME", 10),
    "8005": AISpec("PRICE PER UNIT", 6),
    "90": _variable("INTERNAL", 30),
    **{str(n): _variable("INTERNAL", 90) for n in range(91, 100)},
}


@dataclass(frozen=True)
class Element:
    """One AI and its data, e.g. Element("3103", "NET WEIGHT (kg)", "001250")."""

    ai: str
    title: str
    value: str


def _show(text: str) -> str:
    return text.replace(GS, "<GS>")


def _identify(data: str, at: int) -> tuple[str, AISpec]:
    for n in (2, 3, 4):
        spec = AIS.get(data[at:at + n])
        if spec is None:
            continue
        if not spec.decimals:
            return data[at:at + n], spec
        ai = data[at:at + 4]
        if len(ai) == 4 and ai[3].isdigit():
            return ai, spec
        break
    raise BarcodeError(f"unknown application identifier at {_show(data[at:at + 4])!r}")


def parse_element_string(data: str) -> tuple[Element, ...]:
    """A GS1 element string (FNC1 = GS, or bracketed) as its elements, each checked."""
    if data.startswith("("):
        return _parse_bracketed(data)
    data = data.lstrip(GS)  # some scanners send the leading FNC1 too
    elements: list[Element] = []
    at = 0
    while at < len(data):
        ai, spec = _identify(data, at)
        at += len(ai)
        if spec.fixed:
            value, at = data[at:at + spec.length], at + spec.length
            if data[at:at + 1] == GS:  # tolerated after a fixed-length AI
                at += 1
        else:
            end = data.find(GS, at)
            end = len(data) if end < 0 else end
            value, at = data[at:end], end + 1
        elements.append(_element(ai, spec, value))
    if not elements:
        raise BarcodeError("a GS1 code without any application identifier")
    return tuple(elements)


def _parse_bracketed(data: str) -> tuple[Element, ...]:
    pairs = re.findall(r"\((\d{2,4})\)([^()]*)", data)
    if "".join(f"({ai}){value}" for ai, value in pairs) != data:
        raise BarcodeError(f"{data!r} is not a bracketed GS1 element string like (01)09501101530003")
    elements = []
    for ai, value in pairs:
        found, spec = _identify(ai, 0)
        if found != ai:
            raise BarcodeError(f"unknown application identifier ({ai})")
        elements.append(_element(ai, spec, value))
    return tuple(elements)


def _element(ai: str, spec: AISpec, value: str) -> Element:
    if spec.fixed and len(value) != spec.length:
        raise BarcodeError(f"AI {ai} ({spec.title}): needs {spec.length} characters, got {_show(value)!r}")
    if not value:
        raise BarcodeError(f"AI {ai} ({spec.title}): no data")
    if len(value) > spec.length:
        raise BarcodeError(f"AI {ai} ({spec.title}): more than {spec.length} characters "
                           f"(is the FNC1 separator missing?)")
    if spec.numeric and not value.isdigit():
        raise BarcodeError(f"AI {ai} ({spec.title}): {_show(value)!r} must be digits")
    if not spec.numeric and any(ord(c) < 0x20 for c in value):
        raise BarcodeError(f"AI {ai} ({spec.title}): {_show(value)!r} has control characters")
    if spec.check == "digit":
        try:
            verify_check_digit(value)
        except BarcodeError as exc:
            raise BarcodeError(f"AI {ai} ({spec.title}): {exc}") from None
    if spec.check == "date":
        _gs1_date(ai, value)
    if spec.decimals and ai[:3] in ("310", "320") and int(ai[3]) > 6:
        raise BarcodeError(f"AI {ai} ({spec.title}): at most 6 decimals")
    if ai[:3] == "393" and len(value) < 4:
        raise BarcodeError(f"AI {ai} ({spec.title}): a 3-digit currency, then the price")
    return Element(ai, spec.title, value)


def _gs1_date(ai: str, value: str) -> date:
    """YYMMDD, read as 20YY; day 00 means the month's last day."""
    year, month, day = 2000 + int(value[:2]), int(value[2:4]), int(value[4:])
    try:
        if day == 0 and 1 <= month <= 12:
            day = calendar.monthrange(year, month)[1]
        return date(year, month, day)
    except ValueError:
        raise BarcodeError(f"AI {ai}: {value!r} is not a date (YYMMDD)") from None


# --- scans --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScannedCode:
    """One scan, read. ``lookup`` lists the codes to find the product by, in order."""

    code: str  # as scanned, without its AIM identifier (what a ticket line keeps)
    symbology: str  # e.g. "GS1-128"; "" when neither the scan nor the scanner said
    lookup: tuple[str, ...]
    weight: Decimal | None = None  # kg, from a scale label or AI 310n/320n
    price: Decimal | None = None  # what the label says the item costs (AI 392n/393n, $ digits)
    currency: str = ""  # the price's ISO 4217 code from AI 393n; "" = the store's own
    count: int | None = None  # AI 30/37
    batch: str = ""
    expiry: date | None = None  # AI 17
    serial: str = ""
    elements: tuple[Element, ...] = ()
    layout: str = ""  # the scale label layout that matched

    @property
    def measured(self) -> bool:
        """The label fixes the line's weight or price (so the line is one item, as labelled)."""
        return self.weight is not None or self.price is not None


def parse_scan(code: str, symbology: str = "", layouts: Sequence[ScaleLayout] = ()) -> ScannedCode:
    """Read one scan. ``symbology`` is what the scanner reported (a name from
    ``AIM_SYMBOLOGIES`` or an identifier such as ``]Q3``); an AIM identifier at the
    start of ``code`` wins over it. Raises BarcodeError with the reason."""
    aim_id, data = _split_aim_id(code)
    if not aim_id and symbology.startswith("]"):
        aim_id = symbology[1:] if symbology[1:] in AIM_SYMBOLOGIES else ""
    if aim_id:
        symbology = AIM_SYMBOLOGIES[aim_id]
    if not data:
        raise BarcodeError("an empty scan")
    bracketed = not symbology and re.match(r"\(\d{2,4}\)", data) is not None  # typed at the till
    if aim_id in GS1_AIM_IDS or symbology in GS1_SYMBOLOGIES or bracketed:
        return _from_gs1(data, symbology)
    if symbology and symbology not in EAN_SYMBOLOGIES:
        return ScannedCode(data, symbology, (data,))  # Code 128, Code 39, QR...: a code as it is
    main = data[:13] if symbology == "EAN-13 / UPC-A + add-on" and len(data) in (15, 18) else data
    layout = next((la for la in layouts if len(main) == 13 and main.isdigit() and main.startswith(la.prefix)), None)
    if layout is not None:
        return _from_label(data, main, symbology, layout)
    if not symbology:
        return ScannedCode(data, "", (data,))  # unknown symbology: exactly as scanned, unchecked
    lengths = EAN_SYMBOLOGIES[symbology]
    if not main.isdigit() or len(main) not in lengths:
        raise BarcodeError(f"{_show(data)!r} is not an {symbology} code ({' or '.join(map(str, lengths))} digits)")
    verify_check_digit(main)
    return ScannedCode(data, symbology, gtin_lookup_keys(main))


def _from_label(data: str, main: str, symbology: str, layout: ScaleLayout) -> ScannedCode:
    verify_check_digit(main)
    start, end = layout.measure
    digits = main[start:end]
    if layout.verifier is not None and int(main[layout.verifier]) != price_check_digit(digits):
        raise BarcodeError(f"bad price check digit: {main} (layout {layout.picture})")
    value = int(digits)
    if value == 0:
        raise BarcodeError(f"the label's {layout.measure_kind} is 0: {main}")
    variable = set(range(start, end)) | ({layout.verifier} if layout.verifier is not None else set())
    body = "".join("0" if i in variable else c for i, c in enumerate(main[:12]))
    item = main[layout.item[0]:layout.item[1]]
    weight = Decimal(value).scaleb(-3) if layout.measure_kind == "weight" else None
    price = Decimal(value).scaleb(-2) if layout.measure_kind == "price" else None
    return ScannedCode(data, symbology, (body + str(gtin_check_digit(body)), item), weight=weight, price=price,
                       layout=layout.picture)


def _from_gs1(data: str, symbology: str) -> ScannedCode:
    elements = parse_element_string(data)
    by_family: dict[str, Element] = {}
    for element in elements:
        spec = AIS.get(element.ai[:3])
        family = element.ai[:3] + "n" if len(element.ai) == 4 and spec is not None and spec.decimals else element.ai
        if family in by_family:
            raise BarcodeError(f"AI {family} appears twice")
        by_family[family] = element
    gtin = by_family.get("01") or by_family.get("02")
    if gtin is None:
        raise BarcodeError("a GS1 code without a GTIN (AI 01 or 02) to look up")

    def scaled(element: Element, digits: str) -> Decimal:
        return Decimal(int(digits)).scaleb(-int(element.ai[3]))

    weight = None
    if "310n" in by_family:
        weight = scaled(by_family["310n"], by_family["310n"].value)
    elif "320n" in by_family:
        pounds = scaled(by_family["320n"], by_family["320n"].value)
        weight = (pounds * KG_PER_LB).quantize(GRAM, ROUND_HALF_UP)
    if "392n" in by_family and "393n" in by_family:
        raise BarcodeError("AI 392n and 393n: two prices")
    price, currency = None, ""
    if "392n" in by_family:
        price = scaled(by_family["392n"], by_family["392n"].value)
    elif "393n" in by_family:
        element = by_family["393n"]
        currency = CURRENCIES.get(element.value[:3], element.value[:3])
        price = scaled(element, element.value[3:])
    count_element = by_family.get("30") or by_family.get("37")
    count = int(count_element.value) if count_element else None
    for name, amount in (("weight", weight), ("price", price), ("count", count)):
        if amount is not None and amount == 0:
            raise BarcodeError(f"the code's {name} is 0")
    expiry = _gs1_date("17", by_family["17"].value) if "17" in by_family else None
    return ScannedCode(
        data, symbology, gtin_lookup_keys(gtin.value), weight=weight, price=price, currency=currency, count=count,
        batch=by_family["10"].value if "10" in by_family else "", expiry=expiry,
        serial=by_family["21"].value if "21" in by_family else "", elements=elements)
