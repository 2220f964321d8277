"""devices.readers.keymap: scanner key events (real evdev InputEvents) back to scanned text."""

from __future__ import annotations

import pytest
from evdev import InputEvent, ecodes

from devices.readers import keymap
from devices.readers.keymap import KeyDecoder, strip_aim

E = ecodes
SHIFT, RSHIFT, CTRL, RCTRL, ALTGR = (E.KEY_LEFTSHIFT, E.KEY_RIGHTSHIFT, E.KEY_LEFTCTRL,
                                     E.KEY_RIGHTCTRL, E.KEY_RIGHTALT)
DIGIT = {d: getattr(E, f"KEY_{d}") for d in "0123456789"}


def ev(code: int, value: int = 1, type_: int = E.EV_KEY) -> InputEvent:
    return InputEvent(1700000000, 0, type_, code, value)


def tap(code: int) -> list[InputEvent]:
    """What a real keyboard device sends for one key press: MSC_SCAN, down, SYN, up, SYN."""
    return [ev(E.MSC_SCAN, 0x70000 + code, E.EV_MSC), ev(code, 1), ev(E.SYN_REPORT, 0, E.EV_SYN),
            ev(code, 0), ev(E.SYN_REPORT, 0, E.EV_SYN)]


def with_mod(mod: int, *codes: int) -> list[InputEvent]:
    return [ev(mod, 1), *[e for c in codes for e in tap(c)], ev(mod, 0)]


def digits(text: str) -> list[InputEvent]:
    return [e for d in text for e in tap(DIGIT[d])]


def run(decoder: KeyDecoder, events: list[InputEvent]) -> list[str]:
    """Feed every event; return the completed scans (and check nothing else came back)."""
    out = [decoder.feed_event(e) for e in events]
    return [r for r in out if r is not None]


ENTER = tap(E.KEY_ENTER)


def test_digits_and_enter():
    dec = KeyDecoder()
    events = digits("8410000000011")
    assert run(dec, events) == []  # nothing before the terminator
    assert dec.pending == "8410000000011"
    assert run(dec, ENTER) == ["8410000000011"]
    assert dec.pending == ""
    assert run(dec, digits("12") + ENTER + digits("34") + tap(E.KEY_KPENTER)) == ["12", "34"]
    assert dec.unknown_keys == 0


def test_us_shifted_letters_and_punctuation():
    keys = [E.KEY_A, E.KEY_MINUS, E.KEY_EQUAL, E.KEY_LEFTBRACE, E.KEY_RIGHTBRACE, E.KEY_SEMICOLON,
            E.KEY_APOSTROPHE, E.KEY_COMMA, E.KEY_DOT, E.KEY_SLASH, E.KEY_BACKSLASH, E.KEY_GRAVE]
    events = ([e for k in keys for e in tap(k)] + with_mod(SHIFT, *keys)
              + with_mod(RSHIFT, E.KEY_Z, DIGIT["1"], DIGIT["2"], DIGIT["8"]) + tap(E.KEY_Z)
              + tap(E.KEY_SPACE) + ENTER)
    assert run(KeyDecoder("us"), events) == ["a-=[];',./\\`" + 'A_+{}:"<>?|~' + "Z!@*z "]


def test_de_swaps_y_and_z_and_moves_punctuation():
    keys = [E.KEY_Y, E.KEY_Z, E.KEY_SLASH, E.KEY_RIGHTBRACE, E.KEY_DOT]
    shifted = [E.KEY_Y, E.KEY_Z, E.KEY_SLASH, E.KEY_RIGHTBRACE, E.KEY_DOT, DIGIT["7"], DIGIT["0"],
               DIGIT["2"]]
    events = ([e for k in keys for e in tap(k)] + with_mod(SHIFT, *shifted)
              + with_mod(ALTGR, E.KEY_Q) + ENTER)
    assert run(KeyDecoder("us"), events) == ["yz/]." + 'YZ?}>&)@' + "q"]
    assert run(KeyDecoder("de"), events) == ["zy-+." + 'ZY_*:/="' + "@"]


def test_es_punctuation():
    events = (tap(E.KEY_SLASH) + tap(E.KEY_RIGHTBRACE) + tap(E.KEY_SEMICOLON)
              + with_mod(SHIFT, E.KEY_SLASH, E.KEY_RIGHTBRACE, E.KEY_DOT, DIGIT["7"])
              + with_mod(ALTGR, DIGIT["2"]) + tap(E.KEY_Y) + ENTER)
    assert run(KeyDecoder("es"), events) == ["-+ñ_*:/@y"]


def test_keypad_digits_are_layout_independent():
    events = [e for d in "8410000000011" for e in tap(getattr(E, f"KEY_KP{d}"))]
    events += tap(E.KEY_KPMINUS) + tap(E.KEY_KPPLUS) + tap(E.KEY_KPENTER)
    for layout in ("us", "de", "es"):
        assert run(KeyDecoder(layout), events) == ["8410000000011-+"]


@pytest.mark.parametrize("layout", ["us", "de", "es"])
def test_gs1_group_separator_from_f8_and_ctrl_bracket(layout):
    # (01)08410000000011 (10)AB1 FNC1 (21)X FNC1 (17)251231
    events = (digits("0108410000000011") + digits("10") + with_mod(SHIFT, E.KEY_A, E.KEY_B)
              + digits("1") + tap(E.KEY_F8) + digits("21") + with_mod(SHIFT, E.KEY_X)
              + with_mod(CTRL, E.KEY_RIGHTBRACE) + with_mod(RCTRL, E.KEY_RIGHTBRACE)
              + digits("17251231") + ENTER)
    assert run(KeyDecoder(layout), events) == ["0108410000000011" "10AB1\x1d" "21X\x1d\x1d" "17251231"]


def test_ctrl_letters_give_control_characters_for_iso15434():
    # "[)>" RS "06" GS "1PABC" RS EOT, as a scanner in Ctrl+ASCII mode types it on "us"
    events = (tap(E.KEY_LEFTBRACE) + with_mod(SHIFT, DIGIT["0"], E.KEY_DOT)
              + with_mod(CTRL, DIGIT["6"]) + digits("06") + with_mod(CTRL, E.KEY_RIGHTBRACE)
              + digits("1") + with_mod(SHIFT, E.KEY_P, E.KEY_A, E.KEY_B, E.KEY_C)
              + with_mod(CTRL, DIGIT["6"]) + with_mod(CTRL, E.KEY_D) + ENTER)
    assert run(KeyDecoder("us"), events) == ["[)>\x1e06\x1d1PABC\x1e\x04"]
    # Ctrl + the key labelled Z on a German keyboard (KEY_Y) is Ctrl+Z = SUB.
    assert run(KeyDecoder("de"), with_mod(CTRL, E.KEY_Y) + ENTER) == ["\x1a"]


def test_autorepeat_is_ignored():
    one = DIGIT["1"]
    events = [ev(one, 1), ev(one, 2), ev(one, 2), ev(one, 2), ev(one, 0)] + digits("2")
    # a held shift autorepeats too: it stays held
    events += [ev(SHIFT, 1), ev(SHIFT, 2), ev(SHIFT, 2)] + tap(E.KEY_A) + [ev(SHIFT, 0)]
    events += [ev(E.KEY_ENTER, 1), ev(E.KEY_ENTER, 2), ev(E.KEY_ENTER, 0)]
    dec = KeyDecoder()
    assert run(dec, events) == ["12A"]
    assert dec.unknown_keys == 0


def test_key_ups_only_release_modifiers():
    dec = KeyDecoder()
    ups = [ev(DIGIT["7"], 0), ev(E.KEY_A, 0), ev(E.KEY_F1, 0), ev(E.KEY_ENTER, 0)]
    assert run(dec, ups) == [] and dec.pending == "" and dec.unknown_keys == 0
    # shift held for the first A only; released before the second
    events = [ev(SHIFT, 1)] + tap(E.KEY_A) + [ev(SHIFT, 0)] + tap(E.KEY_A) + ENTER
    assert run(dec, events) == ["Aa"]


def test_non_key_events_are_ignored():
    dec = KeyDecoder()
    assert dec.feed(E.EV_MSC, E.MSC_SCAN, E.KEY_ENTER) is None
    assert dec.feed(E.EV_SYN, E.SYN_REPORT, 0) is None
    assert dec.feed(E.EV_LED, E.LED_NUML, 1) is None
    assert dec.pending == "" and dec.unknown_keys == 0


def test_tab_terminator():
    dec = KeyDecoder(terminator="tab")
    events = digits("4006381333931") + ENTER + tap(E.KEY_TAB) + digits("5") + tap(E.KEY_TAB)
    assert run(dec, events) == ["4006381333931", "5"]
    # with Enter as terminator, Tab is data (scanners use it between fields)
    assert run(KeyDecoder(), digits("1") + tap(E.KEY_TAB) + digits("2") + ENTER) == ["1\t2"]


def test_lone_terminator_is_not_a_scan():
    assert run(KeyDecoder(), ENTER + ENTER) == []


def test_unknown_keys_are_counted_and_skipped():
    dec = KeyDecoder("us")
    events = (tap(E.KEY_F1) + digits("1") + tap(E.KEY_HOME) + tap(E.KEY_ESC)
              + [ev(E.KEY_F2, 1), ev(E.KEY_F2, 2), ev(E.KEY_F2, 0)]  # a repeat is not a 2nd key
              + with_mod(CTRL, DIGIT["1"])  # Ctrl+1 has no ASCII meaning
              + tap(E.KEY_CAPSLOCK) + tap(E.KEY_NUMLOCK) + with_mod(SHIFT) + digits("2") + ENTER)
    assert run(dec, events) == ["12"]
    assert dec.unknown_keys == 5
    # A German dead key (^ left of 1) types nothing by itself: unknown too.
    de = KeyDecoder("de")
    assert run(de, tap(E.KEY_GRAVE) + digits("3") + ENTER) == ["3"]
    assert de.unknown_keys == 1


def test_reset_drops_a_partial_scan():
    dec = KeyDecoder()
    run(dec, digits("999") + [ev(SHIFT, 1)])
    dec.reset()
    assert dec.pending == ""
    assert run(dec, tap(E.KEY_A) + [ev(SHIFT, 0)] + digits("1") + ENTER) == ["A1"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="layout"):
        KeyDecoder("fr")
    with pytest.raises(ValueError, match="terminator"):
        KeyDecoder(terminator="space")


def test_fallback_codes_are_the_kernel_codes():
    # The fallback table is what runs where evdev is missing: it must agree with evdev.
    assert len(keymap._FALLBACK) > 70
    for name, code in keymap._FALLBACK.items():
        assert getattr(ecodes, name) == code, name


@pytest.mark.parametrize("scan, expected", [
    ("]E08410000000011", ("EAN-13 / UPC-A", "8410000000011")),
    ("]E484100004", ("EAN-8", "84100004")),
    ("]C1010841000000001110AB1\x1d21X", ("GS1-128", "010841000000001110AB1\x1d21X")),
    ("]C0ABC-123", ("Code 128", "ABC-123")),
    ("]A0HELLO", ("Code 39", "HELLO")),
    ("]Q1https://example.com/", ("QR Code", "https://example.com/")),
    ("]Q3010841000000001", ("QR Code", "010841000000001")),
    ("]d1plain", ("Data Matrix", "plain")),
    ("]d201084100000000111721", ("GS1 DataMatrix", "01084100000000111721")),
    ("]e00108410000000011", ("GS1 DataBar", "0108410000000011")),
    ("]I012345678", ("ITF", "12345678")),
    ("8410000000011", ("", "8410000000011")),
    ("]X9unknown", ("", "]X9unknown")),
    ("]E", ("", "]E")),
    ("]1E0", ("", "]1E0")),
    ("", ("", "")),
])
def test_strip_aim(scan, expected):
    assert strip_aim(scan) == expected
