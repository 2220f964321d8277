"""Turn a keyboard-wedge barcode scanner's key events back into the scanned text.

A USB HID scanner in keyboard mode "types" each scan as key presses and ends it
with a terminator key (Enter or Tab). Reading the device through evdev (grabbed,
so the keystrokes never reach a shell or the lane's UI) gives raw key codes, i.e.
physical key positions: which character a position means depends on the keyboard
layout the scanner was configured for, so ``KeyDecoder`` takes that layout.

GS1 barcodes carry FNC1 as the ASCII group separator (GS, 0x1D), which has no key:
scanners send it as F8 or as Ctrl+]; both decode to ``"\\x1d"``. Other Ctrl+key
combinations decode to their ASCII control characters (Ctrl+D = EOT, Ctrl+^ = RS)
so ISO 15434 envelopes survive too.

``strip_aim`` removes an AIM symbology identifier (``]E0``, ``]C1``...) that a
scanner may be configured to prefix to each scan, and names the symbology.
"""

from __future__ import annotations

import string
from types import ModuleType

from lanehub.domain.barcodes import split_aim

# Numeric key codes from linux/input-event-codes.h, so this module imports (and
# decodes) on a machine without evdev; evdev's own values win when it is there.
_FALLBACK: dict[str, int] = {
    "EV_KEY": 1,
    "KEY_ESC": 1, "KEY_MINUS": 12, "KEY_EQUAL": 13, "KEY_TAB": 15,
    "KEY_LEFTBRACE": 26, "KEY_RIGHTBRACE": 27, "KEY_ENTER": 28, "KEY_LEFTCTRL": 29,
    "KEY_SEMICOLON": 39, "KEY_APOSTROPHE": 40, "KEY_GRAVE": 41, "KEY_LEFTSHIFT": 42,
    "KEY_BACKSLASH": 43, "KEY_COMMA": 51, "KEY_DOT": 52, "KEY_SLASH": 53,
    "KEY_RIGHTSHIFT": 54, "KEY_KPASTERISK": 55, "KEY_LEFTALT": 56, "KEY_SPACE": 57,
    "KEY_CAPSLOCK": 58, "KEY_F8": 66, "KEY_NUMLOCK": 69, "KEY_KPMINUS": 74,
    "KEY_KPPLUS": 78, "KEY_KPDOT": 83, "KEY_102ND": 86, "KEY_KPENTER": 96,
    "KEY_RIGHTCTRL": 97, "KEY_KPSLASH": 98, "KEY_RIGHTALT": 100,
    "KEY_LEFTMETA": 125, "KEY_RIGHTMETA": 126,
}
_FALLBACK.update({f"KEY_{d}": 2 + i for i, d in enumerate("1234567890")})
for _row, _first in (("QWERTYUIOP", 16), ("ASDFGHJKL", 30), ("ZXCVBNM", 44)):
    _FALLBACK.update({f"KEY_{c}": _first + i for i, c in enumerate(_row)})
_FALLBACK.update({f"KEY_KP{d}": c for d, c in zip("7894561230", (71, 72, 73, 75, 76, 77, 79, 80, 81, 82))})

_ecodes: ModuleType | None
try:
    from evdev import ecodes as _ecodes
except ImportError:  # no evdev here: the fallback table is the whole truth
    _ecodes = None


def _code(name: str) -> int:
    return getattr(_ecodes, name, _FALLBACK[name]) if _ecodes is not None else _FALLBACK[name]


EV_KEY = _code("EV_KEY")
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2
GS = "\x1d"


def _letters(swap_yz: bool = False) -> dict[str, tuple[str, str]]:
    keys = {f"KEY_{c}": (c.lower(), c) for c in string.ascii_uppercase}
    if swap_yz:  # QWERTZ: the key in the US "Y" position types Z, and vice versa
        keys["KEY_Y"], keys["KEY_Z"] = keys["KEY_Z"], keys["KEY_Y"]
    return keys


def _digits(shifted: str) -> dict[str, tuple[str, str]]:
    return {f"KEY_{d}": (d, s) for d, s in zip("1234567890", shifted)}


# Per layout: key name -> (unshifted, shifted); None = a dead key or nothing, which
# counts as unknown. Dead keys (accents) are left out: barcodes do not use them.
_LAYOUTS: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "us": {
        **_letters(), **_digits("!@#$%^&*()"),
        "KEY_MINUS": ("-", "_"), "KEY_EQUAL": ("=", "+"),
        "KEY_LEFTBRACE": ("[", "{"), "KEY_RIGHTBRACE": ("]", "}"),
        "KEY_SEMICOLON": (";", ":"), "KEY_APOSTROPHE": ("'", '"'), "KEY_GRAVE": ("`", "~"),
        "KEY_BACKSLASH": ("\\", "|"), "KEY_102ND": ("\\", "|"),
        "KEY_COMMA": (",", "<"), "KEY_DOT": (".", ">"), "KEY_SLASH": ("/", "?"),
        "KEY_KPDOT": (".", "."),
    },
    "de": {
        **_letters(swap_yz=True), **_digits('!"§$%&/()='),
        "KEY_MINUS": ("ß", "?"), "KEY_RIGHTBRACE": ("+", "*"),
        "KEY_LEFTBRACE": ("ü", "Ü"), "KEY_SEMICOLON": ("ö", "Ö"), "KEY_APOSTROPHE": ("ä", "Ä"),
        "KEY_GRAVE": (None, "°"), "KEY_BACKSLASH": ("#", "'"), "KEY_102ND": ("<", ">"),
        "KEY_COMMA": (",", ";"), "KEY_DOT": (".", ":"), "KEY_SLASH": ("-", "_"),
    },
    "es": {
        **_letters(), **_digits('!"·$%&/()='),
        "KEY_MINUS": ("'", "?"), "KEY_EQUAL": ("¡", "¿"), "KEY_RIGHTBRACE": ("+", "*"),
        "KEY_SEMICOLON": ("ñ", "Ñ"), "KEY_GRAVE": ("º", "ª"), "KEY_BACKSLASH": ("ç", "Ç"),
        "KEY_102ND": ("<", ">"),
        "KEY_COMMA": (",", ";"), "KEY_DOT": (".", ":"), "KEY_SLASH": ("-", "_"),
    },
}
# AltGr (right Alt) level, where "es" and "de" keep @ [ ] { } \ | ~ #.
_ALTGR: dict[str, dict[str, str]] = {
    "us": {},
    "de": {"KEY_Q": "@", "KEY_7": "{", "KEY_8": "[", "KEY_9": "]", "KEY_0": "}",
           "KEY_MINUS": "\\", "KEY_RIGHTBRACE": "~", "KEY_102ND": "|", "KEY_E": "€"},
    "es": {"KEY_1": "|", "KEY_2": "@", "KEY_3": "#", "KEY_4": "~", "KEY_E": "€",
           "KEY_LEFTBRACE": "[", "KEY_RIGHTBRACE": "]", "KEY_APOSTROPHE": "{",
           "KEY_BACKSLASH": "}", "KEY_GRAVE": "\\"},
}
# The same on every layout: the space bar and the numeric keypad (scanners in
# "keypad" mode type digits there precisely to be layout-independent).
_COMMON = {"KEY_SPACE": (" ", " "), "KEY_KPASTERISK": ("*", "*"), "KEY_KPMINUS": ("-", "-"),
           "KEY_KPPLUS": ("+", "+"), "KEY_KPSLASH": ("/", "/"),
           **{f"KEY_KP{d}": (d, d) for d in "0123456789"}}
# Ctrl + the key in the US position of [ \ ] ^(6) _(-) gives ESC FS GS RS US, as on
# a terminal; Ctrl + a letter gives 0x01-0x1A. Scanners use this to send GS (FNC1).
_CTRL_PUNCT = {"KEY_LEFTBRACE": "\x1b", "KEY_BACKSLASH": "\x1c", "KEY_RIGHTBRACE": GS,
               "KEY_6": "\x1e", "KEY_MINUS": "\x1f"}
_TERMINATORS = {"enter": ("KEY_ENTER", "KEY_KPENTER"), "tab": ("KEY_TAB",)}
# Keys that only change state or mean nothing in a scan: never "unknown".
_SILENT = ("KEY_CAPSLOCK", "KEY_NUMLOCK", "KEY_LEFTALT", "KEY_LEFTMETA", "KEY_RIGHTMETA",
           "KEY_ENTER", "KEY_KPENTER")


class KeyDecoder:
    """Feed it one scanner's key events; it returns each scan when the terminator comes."""

    def __init__(self, layout: str = "us", terminator: str = "enter"):
        if layout not in _LAYOUTS:
            raise ValueError(f"unknown keyboard layout {layout!r}: use one of {sorted(_LAYOUTS)}")
        if terminator not in _TERMINATORS:
            raise ValueError(f"unknown terminator {terminator!r}: use one of {sorted(_TERMINATORS)}")
        self.layout = layout
        self.terminator = terminator
        self.unknown_keys = 0
        self._keys = {_code(n): v for n, v in {**_LAYOUTS[layout], **_COMMON}.items()}
        self._altgr = {_code(n): v for n, v in _ALTGR[layout].items()}
        self._ctrl = {_code(n): v for n, v in _CTRL_PUNCT.items()}
        self._ctrl.update({_code(n): chr(ord(v[1]) - 0x40)
                           for n, v in _LAYOUTS[layout].items() if v[1] is not None and v[1] in string.ascii_uppercase})
        self._ends = {_code(n) for n in _TERMINATORS[terminator]}
        self._tab = _code("KEY_TAB")
        self._shift = {_code("KEY_LEFTSHIFT"), _code("KEY_RIGHTSHIFT")}
        self._ctrls = {_code("KEY_LEFTCTRL"), _code("KEY_RIGHTCTRL")}
        # Right Alt is AltGr only where the layout has a third level.
        self._altgrs = {_code("KEY_RIGHTALT")} if self._altgr else set()
        self._silent = {_code(n) for n in _SILENT} | {_code("KEY_RIGHTALT")}
        self._f8 = _code("KEY_F8")
        self._held: set[int] = set()
        self._buf: list[str] = []

    @property
    def pending(self) -> str:
        """What has been typed since the last terminator (for a bridge's timeout)."""
        return "".join(self._buf)

    def reset(self) -> None:
        """Drop a partial scan (e.g. after a timeout); held modifiers are kept."""
        self._buf.clear()

    def feed_event(self, event) -> str | None:
        """``feed`` for an ``evdev.InputEvent`` (anything with .type, .code, .value)."""
        return self.feed(event.type, event.code, event.value)

    def feed(self, type_: int, code: int, value: int) -> str | None:
        """Take one input event; return the scanned text when the terminator goes down.

        Non-key events (EV_SYN, EV_MSC) and autorepeats are ignored, key-ups only
        release modifiers. An empty scan (a lone terminator) returns None.
        """
        if type_ != EV_KEY or value == KEY_REPEAT:
            return None
        if code in self._shift or code in self._ctrls or code in self._altgrs:
            if value == KEY_DOWN:
                self._held.add(code)
            else:
                self._held.discard(code)
            return None
        if value != KEY_DOWN:
            return None
        if code in self._ends:
            text, self._buf = "".join(self._buf), []
            return text or None
        char = self._char(code)
        if char is not None:
            self._buf.append(char)
        elif code not in self._silent:
            self.unknown_keys += 1
        return None

    def _char(self, code: int) -> str | None:
        if code == self._f8:
            return GS
        if code == self._tab:  # only reached when Tab is not the terminator
            return "\t"
        if self._held & self._ctrls:
            return self._ctrl.get(code)
        if self._held & self._altgrs:
            return self._altgr.get(code)
        pair = self._keys.get(code)
        if pair is None:
            return None
        return pair[1] if self._held & self._shift else pair[0]


def strip_aim(text: str) -> tuple[str, str]:
    """Split a known AIM identifier off a scan: ("]E0841..." -> ("EAN-13 / UPC-A", "841...")).

    Returns ("", text) unchanged when the scan does not start with one we know. The
    table is ``lanehub.domain.barcodes.AIM_SYMBOLOGIES``, the one the edge reads scans with.
    """
    return split_aim(text)
