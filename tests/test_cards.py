"""devices.readers.swipe: magnetic-stripe and plain-number swipes, payment-card detection, LRC."""

from __future__ import annotations

import string

import pytest

from devices.readers.swipe import Swipe, is_payment_pan, lrc, luhn_ok, mask, parse_swipe

VISA = "4111111111111111"
FIN_T1 = f"%B{VISA}^DOE/JOHN^2512101000000000000?"
FIN_T2 = f";{VISA}=2512101?"


def with_lrc(track: str, track_no: int) -> str:
    """A track followed by its correct LRC character."""
    return track + lrc(track, track_no)


def find_track(template: str, track_no: int, wanted: str) -> str:
    """The first track built from template.format(n=..., c=...) whose LRC is ``wanted``."""
    for c in string.ascii_uppercase:
        for n in range(100000, 101000):
            track = template.format(n=n, c=c)
            if lrc(track, track_no) == wanted:
                return track
    raise AssertionError(f"no track with LRC {wanted!r}")


CARDS = [
    # (id, raw swipe, number, tracks)
    ("track1+2", "%A600123456^PEREZ/ANA^?;600123456=9912?", "600123456", ("1", "2")),
    ("track2 only", ";9400123456789=99?", "9400123456789", ("2",)),
    ("track2 no separator", ";9400123456789?", "9400123456789", ("2",)),
    ("track1 only", "%A600123456^PEREZ/ANA^?", "600123456", ("1",)),
    ("track1 private digit format", "%12345678?", "12345678", ("1",)),
    ("tracks 1+2+3", "%A600123456^X^?;600123456=1?+0123?", "600123456", ("1", "2", "3")),
    ("track3 as second ';'", ";600123456=1?;0123?", "600123456", ("2", "3")),
    ("caps-lock track1", "%a600123456^perez/ana^?", "600123456", ("1",)),
    ("plain number", "12345678", "12345678", ()),
    ("loyalty with letters", "lh-00042x", "LH-00042X", ()),
    ("16 digits not Luhn", "4111111111111112", "4111111111111112", ()),
    ("16 digits Luhn, no IIN", "9000000000000001", "9000000000000001", ()),
    ("short Visa-looking", "4111111111", "4111111111", ()),
    ("CRLF around", "\r\n  %A600123456^PEREZ/ANA^?\r\n;600123456=9912?\r\n", "600123456", ("1", "2")),
    ("plain with CRLF", " 12345678\r\n", "12345678", ()),
    ("good LRCs", with_lrc("%A600123456^PEREZ/ANA^?", 1) + with_lrc(";600123456=9912?", 2),
     "600123456", ("1", "2")),
    ("good LRC track 3 '+'", ";600123456=1?" + with_lrc("+0123?", 3), "600123456", ("2", "3")),
    ("good LRCs + CRLF", "\r\n" + with_lrc(";600123456=9912?", 2) + "\r\n", "600123456", ("2",)),
]


@pytest.mark.parametrize("raw, number, tracks", [c[1:] for c in CARDS], ids=[c[0] for c in CARDS])
def test_customer_cards(raw, number, tracks):
    assert parse_swipe(raw) == Swipe("card", number=number, tracks=tracks)


PAYMENTS = [
    # (id, raw, the PAN it carries, masked, tracks)
    ("financial track1+2", FIN_T1 + FIN_T2, VISA, "************1111", ("1", "2")),
    ("financial track1 only", FIN_T1, VISA, "************1111", ("1",)),
    ("financial track1 with LRCs", with_lrc(FIN_T1, 1) + with_lrc(FIN_T2, 2), VISA,
     "************1111", ("1", "2")),
    ("format B even if not Luhn", "%B4111111111111112^DOE/JOHN^2512101?", "4111111111111112",
     "************1112", ("1",)),
    ("track2 only Visa", FIN_T2, VISA, "************1111", ("2",)),
    ("track1 other format, Visa PAN", f"%A{VISA}^DOE/JOHN^?", VISA, "************1111", ("1",)),
    ("customer track1, Visa track2", f"%A600123456^DOE/JOHN^?{FIN_T2}", VISA,
     "************1111", ("1", "2")),
    ("plain Mastercard", "5555555555554444", "5555555555554444", "************4444", ()),
    ("plain Mastercard 2-series", "2223000048400011", "2223000048400011", "************0011", ()),
    ("plain Amex", "378282246310005", "378282246310005", "***********0005", ()),
    ("plain Visa with dashes", "4111-1111-1111-1111", VISA, "************1111", ()),
    ("CRLF around financial", f"\r\n{FIN_T1}\r\n{FIN_T2}\r\n", VISA, "************1111", ("1", "2")),
    # lanehub.domain.payment_cards' policy: networks the old prefix table missed, spaced numbers, bank tracks.
    ("plain Visa with spaces", "4111 1111 1111 1111", VISA, "************1111", ()),
    ("plain Mir", "2200000000000004", "2200000000000004", "************0004", ()),
    ("plain RuPay 82", "8200000000000001", "8200000000000001", "************0001", ()),
    ("plain UnionPay 81", "8100000000000002", "8100000000000002", "************0002", ()),
    ("plain Troy", "9792000000000003", "9792000000000003", "************0003", ()),
    ("bank track 2, any prefix and not Luhn", ";9000000000000002=2512101?", "9000000000000002", "************0002", ("2",)),
]


@pytest.mark.parametrize("raw, pan, masked, tracks", [p[1:] for p in PAYMENTS], ids=[p[0] for p in PAYMENTS])
def test_payment_cards_are_masked(raw, pan, masked, tracks):
    swipe = parse_swipe(raw)
    assert (swipe.kind, swipe.number, swipe.masked, swipe.tracks) == ("payment", "", masked, tracks)
    assert swipe.reason
    assert pan not in repr(swipe) and pan[:12] not in repr(swipe)
    assert "DOE" not in repr(swipe) and "2512" not in repr(swipe)


ERRORS = [
    # (id, raw, reason contains)
    ("track1 read error", "%E?", "read error on track 1"),
    ("track2 read error", ";E?", "read error on track 2"),
    ("track3 read error", "+E?", "read error on track 3"),
    ("track2 error after good track1", "%A600123456^X^?;E?", "read error on track 2"),
    ("track2 error after financial track1", FIN_T1 + ";E?", "read error on track 2"),
    ("no end sentinel", "%A600123456^PEREZ/ANA^", "broken sentinels on track 1"),
    ("track1 runs into track2", "%A600123456^PEREZ/ANA^;600123456=9912?", "broken sentinels on track 1"),
    ("no start sentinel", "600123456=9912?", "broken sentinels"),
    ("garbage between tracks", "%A600123456^X^?xx;600123456=9912?", "bad LRC on track 1"),
    ("stray text after track", ";600123456=9912? extra", "broken sentinels: data outside any track"),
    ("empty track", ";?", "track 2 is empty"),
    ("letters on track 2", ";60012A456=9912?", "invalid character on track 2"),
    ("bad LRC on track 2", ";600123456=9912?" + "X", "bad LRC on track 2"),
    ("bad LRC on track 1", "%A600123456^PEREZ/ANA^?" + "\x7f", "bad LRC on track 1"),
    ("bad LRC on track 3", "+0123?" + chr(ord(lrc("+0123?", 3)) ^ 1), "bad LRC on track 3"),
    ("bad LRC on financial track 2", FIN_T2 + chr(ord(lrc(FIN_T2, 2)) ^ 1), "bad LRC on track 2"),
    ("track read twice", ";1234=1?;1234=1?;1234=1?", "read twice"),
    ("empty", " \r\n", "empty"),
    ("plain with spaces, not a card", "4111 1111 1111 1112", "unrecognised"),
    ("plain too short", "123", "unrecognised"),
    ("only separator data", ";=9912?", "no card number"),
]


@pytest.mark.parametrize("raw, reason", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(raw, reason):
    swipe = parse_swipe(raw)
    assert swipe.kind == "error"
    assert reason in swipe.reason
    assert swipe.number == "" and swipe.masked == ""
    assert VISA not in repr(swipe) and "4111 1111 1111 1111" not in repr(swipe)


def test_bad_lrc_exact_reason_and_tracks():
    good = with_lrc(";600123456=9912?", 2)
    bad = good[:-1] + chr(ord(good[-1]) ^ 0x01)
    assert parse_swipe(good).kind == "card"
    assert parse_swipe(bad) == Swipe("error", reason="bad LRC on track 2", tracks=("2",))


def test_track1_lrc_compares_six_bits_and_tolerates_caps_lock():
    track = find_track("%A{n}^DOE/{c}^?", 1, "Q")  # an LRC that is a letter
    assert parse_swipe(track + "Q").kind == "card"
    assert parse_swipe(track.lower() + "q").kind == "card"
    assert parse_swipe(track + "R").reason == "bad LRC on track 1"


def test_lrc_values_by_hand():
    # ';'=0xB ^ '1'=0x1 ^ '?'=0xF = 0x5 -> '5'
    assert lrc(";1?", 2) == "5"
    # '%'=0x05 ^ 'A'=0x21 ^ '?'=0x1F = 0x3B -> chr(0x20 + 0x3B) = '['
    assert lrc("%A?", 1) == "["
    # track 3 typed with '+' has the same LRC as with ';' (same code on the stripe)
    assert lrc("+0123?", 3) == lrc(";0123?", 3)


def test_lrc_that_looks_like_a_start_sentinel():
    # Track 2 whose LRC is ';', followed by a track 3 framed with ';' as well.
    t2 = find_track(";{n}=1?", 2, ";")
    swipe = parse_swipe(t2 + ";" + ";0123?")
    assert swipe == Swipe("card", number=t2[1:7], tracks=("2", "3"))
    # Track 1 whose LRC would be ';' but sent without LRC: the ';' starts track 2.
    t1 = find_track("%A{n}^{c}^?", 1, ";")
    assert parse_swipe(t1 + ";777777=1?") == Swipe("card", number="777777", tracks=("1", "2"))
    # ... and with its LRC, followed by track 2.
    assert parse_swipe(t1 + ";" + ";777777=1?") == Swipe("card", number="777777", tracks=("1", "2"))


@pytest.mark.parametrize("digits, ok", [
    ("4111111111111111", True), ("4111111111111112", False), ("79927398713", True),
    ("79927398710", False), ("0", True), ("", False), ("41111111x1111111", False),
])
def test_luhn(digits, ok):
    assert luhn_ok(digits) is ok


@pytest.mark.parametrize("number, luhn, payment", [
    ("4111111111111111", True, True),      # Visa
    ("5555555555554444", True, True),      # Mastercard 51-55
    ("2223000048400011", True, True),      # Mastercard 2221-2720
    ("2720990000000007", True, True),      # top of the Mastercard 2-series
    ("2721000000000004", True, True),      # just above it: still first digit 2, an issuer range
    ("2200000000000004", True, True),      # Mir
    ("8200000000000001", True, True),      # RuPay 82
    ("8100000000000002", True, True),      # UnionPay / RuPay 81
    ("9792000000000003", True, True),      # Troy
    ("6070000000000002", True, True),      # RuPay 60
    ("378282246310005", True, True),       # Amex
    ("6011111111111117", True, True),      # Discover
    ("3530111333300000", True, True),      # JCB
    ("30569309025904", True, True),        # Diners
    ("6200000000000005", True, True),      # UnionPay
    ("6759649826438453", True, True),      # Maestro
    ("4111111111111112", False, False),    # Visa range, not Luhn
    ("9000000000000001", True, False),     # Luhn, no payment IIN
    ("1000000000000008", True, False),     # Luhn, no payment IIN
    ("411111111117", True, False),         # Luhn, Visa range, too short
    ("41111111111111111115", True, False),  # Luhn, Visa range, too long
    ("4111-1111-1111-1111", False, False),  # not digits
])
def test_is_payment_pan(number, luhn, payment):
    assert luhn_ok(number) is luhn  # so each "False" row fails for the stated reason
    assert is_payment_pan(number) is payment


def test_mask():
    assert mask(VISA) == "************1111"
    assert mask("378282246310005") == "***********0005"
    assert mask("123") == "***"
