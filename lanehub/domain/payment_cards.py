"""The one payment-card policy: what is a payment card number, how it is masked.

lanehub never keeps, logs, echoes or forwards a payment card number (PCI DSS):
a bank card swiped at the loyalty reader, a card number scanned, keyed at the
till, typed into a form or a CSV is refused with its masked form
(``411111******1111``) wherever it enters (docs/protocol.md, "Payment cards";
docs/decisions.md D38). Every entry asks this module, so they all agree.

What counts as a payment card:

- **A card number**: 13-19 digits (a single space, tab or dash between digit
  groups is ignored) that pass the Luhn check and lie in an issuer range. The
  issuer ranges are taken wide on purpose: *every* number whose first digit is
  2-6 (ISO/IEC 7812 major industry identifiers 2 airlines and financial, 3
  travel and entertainment, 4-5 banking, 6 merchandising and banking: Visa,
  Mastercard, Amex, Discover, Diners, JCB, UnionPay 62, Maestro, Mir, RuPay,
  Troy 65, Verve, Elo, Hipercard, Dankort, InterPayment... and any network
  registered there tomorrow), plus the known ranges outside 2-6 (``_OTHER_IINS``:
  UATP 1 with 15 digits, GPN 1946, UnionPay and RuPay 81, RuPay 82, UzCard
  8600, Belkart 9112, Troy 9792, Humo 9860). A table of today's ranges inside
  2-6 would miss the next network and every range we got wrong; refusing a
  loyalty number by mistake costs a reissued card, keeping a PAN costs a breach.
  The price: a loyalty scheme must not use Luhn-valid 13-19 digit numbers that
  start with 2-6 (or sit in ``_OTHER_IINS``): such a card is refused as a
  payment card, and the upgrade's purge deactivates one already handed out.
  EAN-13 in-store numbers (prefix 20-29) are hit by this about one time in ten.
  A run of digits glued to more digits (21 digits without a separator, a GS1
  element string) is not taken for a card, nor is a run that follows ``+``
  (a phone number in international notation), nor one inside a UUID (with or
  without its dashes: lanehub's own ids; about one random UUID in 600 holds a
  Luhn-valid run once its dashes are read as separators).
- **A bank-card track**, whatever its prefix and its Luhn digit: track 1 in the
  financial format ``%B<12-19 digits>^...`` (format code B is reserved to
  financial institutions), or track 2 ``;<12-19 digits>=YYMM<service code>...``
  (an expiry month 01-12 and a 3-digit service code after the separator: a
  loyalty track 2 such as ``;600123456=9912?`` has no service code).

``mask`` shows at most the first six and last four digits (PCI DSS's limit);
fewer for short numbers. ``redact`` masks every card inside a longer text
(error excerpts, log lines): a track is replaced whole, because its expiry,
service code and name are sensitive too.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import Any, Mapping

# Issuer ranges outside first digits 2-6, by prefix (lo, hi) and, where a
# network uses one length only, that length.
_OTHER_IINS: tuple[tuple[str, str, int | None, str], ...] = (
    ("1", "1", 15, "UATP"),
    ("1946", "1946", None, "GPN"),
    ("81", "81", None, "UnionPay/RuPay"),
    ("82", "82", None, "RuPay"),
    ("8600", "8600", None, "UzCard"),
    ("9112", "9112", None, "Belkart"),
    ("9792", "9792", None, "Troy"),
    ("9860", "9860", None, "Humo"),
)

# Network names inside 2-6, for the reason a card reader shows (the policy does
# not depend on them: any Luhn-valid number starting 2-6 is refused). Longest
# prefix wins, so Mir's 2200-2204 is named before anything shorter.
_NAMED_IINS: tuple[tuple[str, str, str], ...] = (
    ("2200", "2204", "Mir"), ("2221", "2720", "Mastercard"), ("51", "55", "Mastercard"),
    ("34", "34", "Amex"), ("37", "37", "Amex"),
    ("300", "305", "Diners"), ("3095", "3095", "Diners"), ("36", "36", "Diners"), ("38", "39", "Diners"),
    ("3528", "3589", "JCB"), ("353", "353", "RuPay/JCB"), ("356", "356", "RuPay/JCB"),
    ("3841", "3841", "Hipercard"), ("606282", "606282", "Hipercard"),
    ("4", "4", "Visa"), ("4571", "4571", "Dankort"), ("5019", "5019", "Dankort"),
    ("401178", "401179", "Elo"), ("431274", "431274", "Elo"), ("438935", "438935", "Elo"),
    ("451416", "451416", "Elo"), ("457393", "457393", "Elo"), ("457631", "457632", "Elo"),
    ("504175", "504175", "Elo"), ("506699", "506778", "Elo"), ("509000", "509999", "Elo"),
    ("627780", "627780", "Elo"), ("636297", "636297", "Elo"), ("636368", "636368", "Elo"),
    ("650031", "650033", "Elo"), ("650035", "650051", "Elo"), ("650405", "650439", "Elo"),
    ("650485", "650538", "Elo"), ("650541", "650598", "Elo"), ("650700", "650727", "Elo"),
    ("650901", "650978", "Elo"), ("651652", "651679", "Elo"), ("655000", "655058", "Elo"),
    ("506099", "506198", "Verve"), ("507865", "507964", "Verve"), ("650002", "650027", "Verve"),
    ("508", "508", "RuPay"), ("60", "60", "RuPay"),
    ("50", "50", "Maestro"), ("56", "58", "Maestro"), ("6759", "6759", "Maestro"), ("676770", "676774", "Maestro"),
    ("6011", "6011", "Discover"), ("644", "649", "Discover"), ("65", "65", "Discover/RuPay/Troy"),
    ("62", "62", "UnionPay"), ("636", "636", "InterPayment"), ("637", "639", "InstaPayment"),
)

MESSAGE = "this is a payment card number ({masked}): lanehub never keeps payment card numbers"

_SEP = r"[ \t-]"
# A digit run with at most one separator between digits; not after '+' (a phone
# number) nor inside a longer run. Its groups are tried as a whole, then as the
# leading and trailing groups (a PAN typed with its expiry after it).
_RUN = re.compile(rf"(?<![\d+])(?<!\d{_SEP})\d(?:{_SEP}?\d)*")
_TRACK1 = re.compile(r"(?:%|(?<![A-Za-z0-9]))[Bb](\d(?: ?\d){11,18})\^[^?\n\"]{0,76}\??")
_TRACK2 = re.compile(r";?(?<!\d)(\d{12,19})=\d\d(?:0[1-9]|1[0-2])\d{3}[\d=]{0,30}\??")
_HEX = "[0-9A-Fa-f]"
_UUID = re.compile(rf"(?<![0-9A-Za-z-]){_HEX}{{8}}(-?){_HEX}{{4}}\1{_HEX}{{4}}\1{_HEX}{{4}}\1{_HEX}{{12}}(?![0-9A-Za-z-])")
_MASKED = re.compile(r"(?<![\d*])\d{6}\*{3,9}\d{4}(?![\d*])")


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check; False for anything that is not all digits."""
    if not digits or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _in(number: str, lo: str, hi: str) -> bool:
    return len(number) >= len(lo) and lo <= number[:len(lo)] <= hi


def brand(number: str) -> str:
    """The network a card number's prefix belongs to, "" when none is named
    (a number may still be a payment card: see ``is_payment_number``)."""
    best, name = 0, ""
    for lo, hi, length, label in _OTHER_IINS:
        if _in(number, lo, hi) and (length is None or len(number) == length) and len(lo) > best:
            best, name = len(lo), label
    for lo, hi, label in _NAMED_IINS:
        if _in(number, lo, hi) and len(lo) > best:
            best, name = len(lo), label
    return name


def is_payment_number(digits: str) -> bool:
    """A bare card number (digits only) that is a payment card: 13-19 digits,
    Luhn-valid, first digit 2-6 or in a known range outside."""
    if not (digits.isdigit() and 13 <= len(digits) <= 19 and luhn_ok(digits)):
        return False
    if digits[0] in "23456":
        return True
    return any(_in(digits, lo, hi) and (length is None or len(digits) == length) for lo, hi, length, _ in _OTHER_IINS)


def _candidates(run: str):
    """The numbers a digit run may hold: all of it, then its leading and trailing groups."""
    groups = re.split(_SEP, run)
    yield "".join(groups)
    for i in range(len(groups) - 1, 0, -1):
        yield "".join(groups[:i])
        yield "".join(groups[i:])


def _cards(text: str):
    """(start, end, number) of every payment card in ``text``: tracks first, then numbers."""
    taken: list[tuple[int, int]] = [m.span() for m in _UUID.finditer(text)]  # ids, not cards
    for pattern in (_TRACK1, _TRACK2):
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append((m.start(), m.end()))
            yield m.start(), m.end(), m.group(1).replace(" ", "")
    for m in _RUN.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        for number in _candidates(m.group(0)):
            if is_payment_number(number):
                yield m.start(), m.end(), number
                break


def find_payment_card(text: str) -> str | None:
    """The first payment card number (digits only) anywhere in ``text``, or None."""
    if not isinstance(text, str) or len(text) < 13:  # shorter than any card: most fields, at once
        return None
    for _, _, number in _cards(text):
        return number
    return None


def is_payment_card(text: str) -> bool:
    """Is ``text`` (surrounding blanks ignored) one payment card number, or a bank-card track?"""
    if not isinstance(text, str):
        return False
    s = text.strip()
    if _TRACK1.search(s) or _TRACK2.search(s):
        return True
    return bool(re.fullmatch(rf"\d(?:{_SEP}?\d)*", s)) and is_payment_number(re.sub(_SEP, "", s))


def mask(number: str) -> str:
    """At most the first six and last four digits: ``411111******1111``; a number
    shorter than 13 digits shows its last four at most (none below 8 digits)."""
    digits = re.sub(r"\D", "", number)
    n = len(digits)
    if n >= 13:
        return digits[:6] + "*" * (n - 10) + digits[-4:]
    if n >= 8:
        return "*" * (n - 4) + digits[-4:]
    return "*" * n


def redact(text: str) -> str:
    """``text`` with every payment card in it replaced by its masked number."""
    if not isinstance(text, str) or len(text) < 13:
        return text
    spans = sorted(_cards(text))
    if not spans:
        return text
    out, last = [], 0
    for start, end, number in spans:
        if start < last:
            continue
        out.append(text[last:start])
        out.append(mask(number))
        last = end
    out.append(text[last:])
    return "".join(out)


def refusal(masked: str) -> str:
    """The one message every entry refuses a payment card with."""
    return MESSAGE.format(masked=masked)


def payment_card_errors(fields: Mapping[str, Any]) -> dict[str, str]:
    """{field: refusal} for every text value that holds a payment card."""
    errors = {}
    for name, value in fields.items():
        found = find_payment_card(value) if isinstance(value, str) else None
        if found:
            errors[name] = refusal(mask(found))
    return errors


def masked_card(text: str) -> str | None:
    """A masked card number (as ``mask`` writes it) inside ``text``, or None: a
    value that was refused and masked must stay refused until someone fixes it."""
    if not isinstance(text, str):
        return None
    m = _MASKED.search(text)
    return m.group(0) if m else None


class RedactingFilter(logging.Filter):
    """Masks payment cards in every log line, also when a URL carries one
    (``q=4111+1111+...`` in an access log line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it itself
            return True
        clean = redact(message)
        if "%" in message or "+" in message:
            unquoted = urllib.parse.unquote_plus(message)
            if find_payment_card(unquoted):
                clean = redact(unquoted)
        if clean != message:
            record.msg, record.args = clean, None
        return True
