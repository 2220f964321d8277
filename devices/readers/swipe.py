"""Parse what a card reader types: magnetic-stripe swipes (ISO 7811/7813) or plain numbers.

Keyboard-wedge and serial readers deliver a swipe as text: track 1
(``%<format code><PAN>^<NAME>^<YYMM><service code>...?``), track 2
(``;<number>=<data>?``), optionally track 3 (``+...?`` or a second ``;...?``),
each optionally followed by its LRC character. Loyalty readers may instead type
a bare card number. ``parse_swipe`` turns any of that into a ``Swipe``:

- ``"card"``: a customer/loyalty card; ``number`` is what the customer table is keyed by;
- ``"payment"``: a bank card swiped at the loyalty reader by mistake. The lane must
  not keep, log or forward the PAN (PCI DSS), so the result holds only the masked
  number and a reason; the raw tracks are dropped here, at the edge of the system;
- ``"error"``: a read error, broken sentinels, a bad LRC or unrecognisable input;
  the reason never echoes the input, which could be a PAN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One policy for every entry (lanehub.domain.payment_cards): the reader refuses exactly what
# the edge, HQ's pages, imports and the CLI refuse.
from lanehub.domain.payment_cards import brand, find_payment_card, is_payment_card, is_payment_number, luhn_ok

__all__ = ["Swipe", "is_payment_pan", "lrc", "luhn_ok", "mask", "parse_swipe"]

START = {"%": 1, ";": 2, "+": 3}
END = "?"
# Character sets of the two encodings (ISO 7811-2): track 1 is 6-bit alphanumeric
# (0x20-0x5F), tracks 2 and 3 are 4-bit numeric (0x30-0x3F). Sentinels are excluded:
# a sentinel inside a track's data means a sentinel was lost (two tracks run together).
_ALPHA = {chr(c) for c in range(0x20, 0x60)} - set(START) - {END}
_NUMERIC = set("0123456789:<=>")
_PLAIN = re.compile(r"^[A-Za-z0-9-]{4,40}$")


@dataclass(frozen=True)
class Swipe:
    kind: str  # "card" | "payment" | "error"
    number: str = ""  # customer card number, kind "card" only
    masked: str = ""  # masked PAN, kind "payment" only
    reason: str = ""  # why "error"/"payment"; never holds a full PAN
    tracks: tuple[str, ...] = ()  # tracks present in the input, e.g. ("1", "2")


class _Bad(Exception):
    """Internal: the swipe is an error; args[0] is the reason."""


def is_payment_pan(number: str) -> bool:
    """A bare number (digits only) that lanehub's policy calls a payment card
    (``lanehub.domain.payment_cards.is_payment_number``: 13-19 digits, Luhn, an issuer range)."""
    return is_payment_number(number)


def mask(pan: str) -> str:
    """Keep only the last four characters: the reader's message is stricter than
    ``lanehub.domain.payment_cards.mask`` (PCI DSS allows at most first six + last four)."""
    return "*" * (len(pan) - 4) + pan[-4:] if len(pan) > 4 else "*" * len(pan)


def lrc(track: str, track_no: int) -> str:
    """The ISO 7811 LRC character of ``track`` (start sentinel to end sentinel inclusive).

    Each character's data bits (parity dropped) are XORed: 6 bits (char - 0x20) on
    track 1, 4 bits (char - 0x30) on tracks 2 and 3. Readers type track 3's start
    sentinel as ``+``, but on the stripe it is the same code as ``;``.
    """
    if track_no == 1:
        value = 0
        for ch in track:
            value ^= (ord(ch) - 0x20) & 0x3F
        return chr(0x20 + value)
    value = 0
    for ch in track:
        value ^= (ord(";" if ch == "+" else ch) - 0x30) & 0x0F
    return chr(0x30 + value)


def _lrc_matches(track: str, track_no: int, given: str) -> bool:
    # Compare data bits only: what the reader typed carries no parity bit we can trust.
    if track_no == 1:
        if "a" <= given <= "z":  # caps lock, as for the track's data
            given = given.upper()
        return (ord(given) - 0x20) & 0x3F == ord(lrc(track, 1)) - 0x20
    return (ord(given) - 0x30) & 0x0F == ord(lrc(track, track_no)) - 0x30


def _well_formed_at(s: str, i: int) -> bool:
    """Does a complete track (start sentinel, clean data, end sentinel) start at s[i]?"""
    end = s.find(END, i + 1)
    return end > i and not any(c in START for c in s[i + 1:end])


def _split_tracks(s: str, found: list[str]) -> dict[int, str]:
    """Split a sentinel-framed swipe into {track number: data}, checking LRCs.

    ``found`` collects the tracks met so far, so that an error can still say which.
    """
    tracks: dict[int, str] = {}
    i = 0
    while i < len(s):
        ch = s[i]
        if ch.isspace():  # readers put CR/LF between tracks
            i += 1
            continue
        if ch not in START:
            raise _Bad("broken sentinels: data outside any track")
        no = START[ch]
        if no == 2 and 2 in tracks:  # some readers frame track 3 with ';' as well
            no = 3
        if no in tracks:
            raise _Bad(f"broken sentinels: track {no} read twice")
        found.append(str(no))
        end = s.find(END, i + 1)
        if end < 0:
            raise _Bad(f"broken sentinels on track {no}: no end sentinel")
        data = s[i + 1:end]
        if any(c in START for c in data):
            raise _Bad(f"broken sentinels on track {no}")
        if no == 1:
            data = data.upper()  # a wedge with caps lock on types track 1 in lower case
        if data == "E":  # the reader's own "could not read this track" token
            raise _Bad(f"read error on track {no}")
        if not data:
            raise _Bad(f"track {no} is empty")
        if any(c not in (_ALPHA if no == 1 else _NUMERIC) for c in data):
            raise _Bad(f"invalid character on track {no}")
        i = end + 1
        # An LRC character is optional and may itself look like a start sentinel;
        # it is one only if a complete track does not start there.
        if i < len(s) and not s[i].isspace() and not (s[i] in START and _well_formed_at(s, i)):
            if not _lrc_matches(ch + data + END, no, s[i]):
                raise _Bad(f"bad LRC on track {no}")
            i += 1
        tracks[no] = data
    return tracks


def _why(pan: str) -> str:
    name = brand(pan)
    return f"payment card number ({name})" if name else "payment card number"


def _payment(pan: str, why: str, tracks: tuple[str, ...]) -> Swipe:
    return Swipe("payment", masked=mask(pan), reason=why, tracks=tracks)


def parse_swipe(raw: str) -> Swipe:
    """Classify one reader input as a customer card, a payment card or an error."""
    s = raw.strip()
    if not s:
        return Swipe("error", reason="empty input")
    if not any(c in s for c in "%;+?"):
        if is_payment_card(s):  # spaces or dashes between the groups, as printed on the card
            digits = re.sub(r"\D", "", s)
            return _payment(digits, _why(digits), ())
        if not _PLAIN.match(s):
            return Swipe("error", reason="unrecognised input: not a swipe or a card number")
        return Swipe("card", number=s.upper())
    found: list[str] = []
    try:
        tracks = _split_tracks(s, found)
    except _Bad as exc:
        return Swipe("error", reason=exc.args[0], tracks=tuple(found))
    seen = tuple(str(n) for n in sorted(tracks))

    pan1 = ""
    t1 = tracks.get(1, "")
    if t1:
        # A letter is a format code ('B' = financial); a digit is taken as the
        # start of a private format's number rather than dropped.
        field = t1[1:] if t1[0].isalpha() else t1
        pan1 = field.split("^", 1)[0].replace(" ", "")
    num2 = tracks.get(2, "").split("=", 1)[0]

    if t1[:1] == "B":
        return _payment(num2 or pan1, "payment card (track 1 format B)", seen)
    # A bank track 2 (PAN=YYMM + service code) whatever its number, or a payment
    # card number on any track.
    # (Not ``found``: that already holds the tracks read.)
    card_number = find_payment_card(s)
    if card_number:
        return _payment(card_number, _why(card_number), seen)
    number = (num2 or pan1).upper()
    if not number:
        return Swipe("error", reason="no card number on tracks 1 or 2", tracks=seen)
    return Swipe("card", number=number, tracks=seen)
