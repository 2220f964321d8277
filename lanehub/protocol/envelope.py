"""The envelope of every wire message: frozen dataclasses that parse and serialise their JSON payloads.

The payloads themselves are in ``lanehub.protocol.lane`` (store broker) and
``lanehub.protocol.sync`` (HQ broker).

Every payload is a UTF-8 JSON object with ``"v": 1`` (docs/protocol.md).
``Message.parse`` turns bytes into a message or raises ``PayloadError`` with
a reason a person can act on; handlers publish that reason on the error
topic and carry on.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

VERSION = 1
EXCERPT_LEN = 200

log = logging.getLogger(__name__)


class PayloadError(ValueError):
    """A payload that is not what its topic carries."""


def excerpt(payload: bytes | str, limit: int = EXCERPT_LEN) -> str:
    """The start of a payload for an error report, payment card numbers masked
    (lanehub.domain.payment_cards): a bad payload may carry one, and reports are published
    and logged. Masked before the cut, so a number across it is masked whole."""
    from lanehub.domain.payment_cards import redact  # here: this function is the only user

    head = payload[:limit * 4 + 200] if isinstance(payload, (bytes, str)) else payload  # 4: UTF-8 bytes per char
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else str(head)
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "…"


# --- decoding: every failure is a PayloadError with a plain reason (docs/protocol.md §13) ---

KiB, MiB = 1024, 1024 * 1024
MAX_BYTES = 256 * KiB  # a lane event, a request, a status: the default per message kind
SYNC_MAX_BYTES = 16 * MiB  # batches of changes, snapshot and catch-up pages, acks (HQ keeps its replies under it)
MAX_DEPTH = 32  # nesting levels, the outer object being 1; lanehub's own messages use at most 6
MAX_INT_DIGITS = 19  # integers are 64-bit (SQLite's INTEGER): more digits cannot fit
INT_RANGE = (-(2**63), 2**63 - 1)
MAX_UP_CHANGES = 1000  # changes per up batch; an edge sends 200
MAX_REASON = 300  # characters of a PayloadError's reason (it goes into replies and reports)

# Nesting is measured on the bytes before json.loads sees them (it recurses, and
# deep input is a RecursionError or worse). Brackets inside strings do not count:
# a skeleton of the structural bytes is kept (translate, in C), escapes taken out,
# then strings. Brackets and quotes are ASCII and never part of a UTF-8 sequence.
_STRUCTURE = b'[]{}"'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
# With escapes: every character that may follow a backslash is kept too (as "x"), so
# that a backslash is always followed by the character it escapes.
_ESCAPABLE = b'[]{}"\\/bfnrtu'
_NOT_ESCAPABLE = bytes(b for b in range(256) if b not in _ESCAPABLE)
_ESCAPES_AS_X = bytes.maketrans(b"/bfnrtu", b"xxxxxxx")
_LEVEL = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# A lone surrogate can only come from a \uD800-\uDFFF escape (strict UTF-8 refuses
# encoded ones); json pairs a high and a low one into one code point, so any
# surrogate left in a decoded string is unpaired.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _maybe_lone_surrogate(text: str) -> bool:
    """False when every surrogate escape in ``text`` is surely half of a pair (an
    escaped emoji, as json.dumps writes it); True sends the decoded value to the
    exact, slower check. A high escape counts as a real one only when no backslash
    precedes it (else it may be the text "\\ud83d"); a low one right after it pairs."""
    low_due = -1
    for match in _SURROGATE_ESCAPE.finditer(text):
        start = match.start()
        if match.group()[3] in "89abAB":
            if low_due != -1 or text[start - 1] == "\\":
                return True
            low_due = start + 6
        elif start != low_due:
            return True
        else:
            low_due = -1
    return low_due != -1


def _too_deep(payload: bytes) -> bool:
    if len(payload) < 64 * KiB and payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return False  # the common case: too few brackets to be that deep
    if b"\\" in payload:
        skeleton = (payload.translate(_ESCAPES_AS_X, _NOT_ESCAPABLE)
                    .replace(b"\\\\", b"").replace(b'\\"', b"").replace(b"\\x", b"").translate(None, b"x"))
    else:
        skeleton = payload.translate(None, _NOT_STRUCTURE)
    # Taking out two adjacent quotes leaves every other quote opening or closing what it
    # did; what remains is brackets outside strings, unless a string held a bracket.
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    return max(itertools.accumulate(map(_LEVEL.__getitem__, skeleton)), default=0) > MAX_DEPTH


def _short(value: Any, limit: int = 40) -> str:
    """A value for a reason: quoted, escaped to ASCII (a reason is published), short."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise PayloadError(f"payload has an integer of more than {MAX_INT_DIGITS} digits ({text[:12]}…)")
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise PayloadError(f"payload has an integer out of the 64-bit range ({text})")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"payload has a number out of range ({_short(text)[1:-1]})")
    return value


def _parse_constant(name: str) -> float:
    raise PayloadError(f"payload has {name}, which is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise PayloadError(f"payload has the key {_short(key)} twice")
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
                            object_pairs_hook=_unique_keys)


def _surrogate_at(data: Any) -> tuple[str, str] | None:
    """Where a decoded value holds a lone surrogate, as a path (``customer.first_name``)."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return path or "the top level", found.group()
        elif isinstance(value, dict):
            for key, item in value.items():
                found = _SURROGATE.search(key)
                # Keys as JSON writes them (control characters escaped: a reason is one line).
                if found:
                    return (path + "." if path else "") + json.dumps(key)[1:-1], found.group()
                todo.append(((path + "." if path else "") + json.dumps(key, ensure_ascii=False)[1:-1], item))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def decode_object(payload: bytes, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """A payload's JSON object, or PayloadError with a plain reason: too big, not
    UTF-8, nested too deep, numbers JSON or SQLite cannot hold, a key twice, a
    lone surrogate, not JSON, not an object, another version."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    if len(payload) > max_bytes:
        limit = f"{max_bytes // MiB} MiB" if max_bytes % MiB == 0 else f"{max_bytes // KiB} KiB"
        raise PayloadError(f"payload is {len(payload):,} bytes, over the limit of {max_bytes:,} bytes ({limit})")
    if not payload:
        raise PayloadError("payload is empty")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 (byte 0x{payload[exc.start]:02x} at offset {exc.start})") from None
    if _too_deep(payload):
        raise PayloadError(f"payload is nested deeper than {MAX_DEPTH} levels")
    try:
        data = _DECODER.decode(text)
    except PayloadError:
        raise
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:  # not reached after _too_deep; kept so that no input can escape
        raise PayloadError(f"payload is nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # whatever else the decoder raises is still a bad payload
        raise PayloadError(f"payload is not JSON: {_short(str(exc), 120)[1:-1]}") from None
    if not isinstance(data, dict):
        raise PayloadError("payload is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != VERSION:  # true and 1.0 equal 1 in Python
        raise PayloadError(f"unsupported payload version v={_short(version)} (expected {VERSION})")
    if _maybe_lone_surrogate(text):
        found = _surrogate_at(data)
        if found:
            path = found[0] if len(found[0]) <= 100 else found[0][:99] + "…"
            raise PayloadError(f"payload has an unpaired surrogate ({found[1].encode('unicode_escape').decode()}) at {path}")
    return data


_D = TypeVar("_D")  # a frozen dataclass with a KIND


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin is not None:
        annotation = origin
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


@functools.cache
def _schema(cls: type[Any]) -> tuple[dict[str, Any], tuple[dataclasses.Field[Any], ...]]:
    """A message class's field types and fields, resolved once (get_type_hints
    costs ~0.2 ms: more than the rest of handling a scan)."""
    return typing.get_type_hints(cls), dataclasses.fields(cls)


def from_fields(cls: type[_D], data: dict[str, Any]) -> _D:
    """An instance of the frozen dataclass ``cls`` from a JSON object, each field's value
    checked against its annotation (a wrong type or a missing field is a PayloadError
    naming ``cls.KIND``); unknown keys are ignored."""
    kind = getattr(cls, "KIND", cls.__name__)
    # A class is hashable; mypy takes a frozen dataclass's instance __hash__ for the class's.
    hints, fields = _schema(cls)  # type: ignore[arg-type]
    values = {}
    for f in fields:
        if f.name in data:
            value = data[f.name]
            if not _type_ok(value, hints[f.name]):
                raise PayloadError(f"{kind}: field {f.name!r} has the wrong type ({type(value).__name__})")
            values[f.name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise PayloadError(f"{kind}: missing field {f.name!r}")
    return cls(**values)


@dataclass(frozen=True)
class Message:
    """Base for payloads; subclasses are frozen dataclasses of their fields."""

    KIND: ClassVar[str] = "message"
    MAX_BYTES: ClassVar[int] = MAX_BYTES  # the largest payload of this kind (decode_object)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return from_fields(cls, data)

    @classmethod
    def parse(cls, payload: bytes) -> Self:
        data = decode_object(payload, cls.MAX_BYTES)
        try:
            return cls.from_dict(data)
        except PayloadError as exc:
            if len(str(exc)) <= MAX_REASON:
                raise
            # A check that quotes a value (an unknown op) may quote a 200 KB one.
            raise PayloadError(str(exc)[: MAX_REASON - 1] + "…") from None
        except Exception as exc:  # a check that trips on a value it did not expect: still this payload's fault
            log.exception("%s: unexpected error reading a payload", cls.KIND)
            raise PayloadError(f"{cls.KIND}: payload cannot be read ({type(exc).__name__}: {_short(str(exc), 120)[1:-1]})") from None

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: fields are JSON values already, and asdict's deep
        # copy of a 5,000-row snapshot page costs more than encoding it.
        return {"v": VERSION, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()
