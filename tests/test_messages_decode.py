"""Decoding a payload never escapes: whatever the bytes, ``Message.parse`` gives a
message or a ``PayloadError`` with a plain reason (depth, number size, encoding,
duplicate keys, size), never a RecursionError or a codec error later on."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lanehub.protocol import lane as lane_messages  # noqa: F401  (its messages are Message subclasses too)
from lanehub.protocol.envelope import Message, PayloadError, decode_object
from lanehub.protocol.sync import SyncReply, UpBatch

KiB, MiB = 1024, 1024 * 1024


def reason(payload: bytes, cls=None) -> str:
    with pytest.raises(PayloadError) as caught:
        cls.parse(payload) if cls else decode_object(payload)
    return str(caught.value)


def nested(depth: int, opener: str = "[") -> bytes:
    """An object ``depth`` levels deep: the outer object is level 1."""
    if opener == "[":
        inner = "[" * (depth - 1) + "]" * (depth - 1)
    else:
        inner = '{"a":' * (depth - 1) + "1" + "}" * (depth - 1)
    return ('{"v":1,"x":' + inner + "}").encode()


def test_deep_nesting_is_a_plain_reason_not_a_recursion_error():
    for depth in (33, 1_000, 40_000):  # 40,000 levels of objects: 240 KB, within the size limit
        assert "nested deeper than 32 levels" in reason(nested(depth))
        assert "nested deeper than 32 levels" in reason(nested(depth, "{"))
    assert decode_object(nested(32))["v"] == 1  # the outer object is level 1
    assert decode_object(nested(32, "{"))["v"] == 1


def test_brackets_inside_strings_are_not_nesting():
    text = "[{" * 200 + '\\"[[' + "\\\\" + "]]}" * 100
    data = decode_object(json.dumps({"v": 1, "notes": text, "k[": ["x]", {"y{": '"[['}]}).encode())
    assert data["notes"] == text
    escaped = json.dumps({"v": 1, "notes": "[" * 100 + "é😀"}, ensure_ascii=True).encode()
    assert decode_object(escaped)["notes"].endswith("é😀")


def test_numbers_are_bounded_integers_and_finite_floats():
    assert "more than 19 digits" in reason(b'{"v":1,"n":' + b"1" * 5_000 + b"}")  # past Python's 4,300-digit limit
    assert "more than 19 digits" in reason(b'{"v":1,"n":-' + b"9" * 20 + b"}")
    assert "64-bit" in reason(b'{"v":1,"n":9223372036854775808}')
    assert decode_object(b'{"v":1,"n":-9223372036854775808,"m":9223372036854775807}')["m"] == 2**63 - 1
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        assert "not a number JSON allows" in reason(b'{"v":1,"n":' + constant + b"}")
    assert "out of range" in reason(b'{"v":1,"n":1e400}')
    assert decode_object(b'{"v":1,"n":1.5e300,"m":-0.0}')["n"] == 1.5e300


def test_lone_surrogates_are_refused_and_pairs_kept():
    assert reason(b'{"v":1,"customer":{"first_name":"a\\ud800"}}') == (
        "payload has an unpaired surrogate (\\ud800) at customer.first_name")
    assert "unpaired surrogate (\\udc00) at changes[1]" in reason(b'{"v":1,"changes":["ok","\\udc00"]}')
    assert "unpaired surrogate" in reason(b'{"v":1,"\\udbff":1}')
    assert decode_object(b'{"v":1,"s":"\\ud83d\\ude00"}')["s"] == "😀"
    assert decode_object(b'{"v":1,"s":"\\\\ud800"}')["s"] == "\\ud800"  # an escaped backslash: plain text


def test_encoding_duplicates_version_and_emptiness_have_plain_reasons():
    assert reason(b'{"v":1,"s":"\xff"}') == "payload is not UTF-8 (byte 0xff at offset 12)"
    assert "not UTF-8" in reason(b'{"v":1,"s":"\xed\xa0\x80"}')  # a surrogate encoded in UTF-8 bytes
    assert "not UTF-8" in reason('{"v":1}'.encode("utf-16"))
    assert reason(b'{"v":1,"q":"a","q":"b"}') == "payload has the key 'q' twice"
    assert reason(b"") == "payload is empty"
    assert "not JSON" in reason(b'{"v":1,"op":"sea')
    assert "unsupported payload version v=True" in reason(b'{"v":true}')
    assert "unsupported payload version v=1.0" in reason(b'{"v":1.0}')
    long_v = reason(b'{"v":"' + b"x" * 10_000 + b'"}')
    assert len(long_v) < 200


def test_size_is_limited_per_message_kind():
    big = json.dumps({"v": 1, "op": "search", "q": "x" * (256 * KiB)}).encode()
    assert reason(big) == f"payload is {len(big):,} bytes, over the limit of 262,144 bytes (256 KiB)"
    batch = json.dumps({"v": 1, "store": "S001", "changes": [], "pad": "x" * (MiB * 2)}).encode()
    assert UpBatch.parse(batch).store == "S001"  # sync batches and pages may be bigger
    huge = json.dumps({"v": 1, "ok": True, "data": {"rows": "x" * (16 * MiB)}}).encode()
    assert "over the limit of 16,777,216 bytes (16 MiB)" in reason(huge, SyncReply)


def test_an_up_batch_is_limited_in_changes():
    changes = [{"id": str(i)} for i in range(1_001)]
    assert reason(json.dumps({"v": 1, "store": "S001", "changes": changes}).encode(), UpBatch) == (
        "up batch: 1,001 changes, over the limit of 1,000 per batch")
    assert len(UpBatch.parse(json.dumps({"v": 1, "store": "S001", "changes": changes[:1000]}).encode()).changes) == 1000


def _message_classes():
    found, todo = [], [Message]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


MESSAGE_CLASSES = _message_classes()
FIELD_NAMES = sorted({name for cls in MESSAGE_CLASSES for name in (f.name for f in dataclasses.fields(cls))} | {"v"})

SCALARS = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=20) | st.sampled_from(["\ud800", "a\udfff", "\ud83d\ude00", "search", "changes", "head"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=12)


@st.composite
def payloads(draw) -> bytes:
    kind = draw(st.sampled_from(["object", "deep", "bytes", "truncated"]))
    obj = {"v": draw(st.sampled_from([1, 1, 1, 2, "1", True, None]))}
    obj.update(draw(st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=8)))
    text = json.dumps(obj, allow_nan=True, ensure_ascii=draw(st.booleans()))
    if kind == "deep":
        depth = draw(st.integers(30, 3_000))
        text = text[:-1] + ',"deep":' + "[" * depth + "]" * depth + "}"
    if kind == "truncated":
        text = text[: draw(st.integers(0, len(text) - 1))]
    data = text.encode("utf-8", "surrogatepass")
    if kind == "bytes":
        data = draw(st.binary(max_size=40)) + data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls=st.sampled_from(MESSAGE_CLASSES), payload=payloads())
def test_parse_gives_a_message_or_a_payload_error_and_nothing_else(cls, payload):
    try:
        message = cls.parse(payload)
    except PayloadError as exc:
        assert str(exc) and "\n" not in str(exc)
        str(exc).encode("utf-8")  # a reason that can itself be published
        return
    message.to_json().decode("utf-8")  # what parsed can be encoded again


TRICKY_TEXT = st.text(st.sampled_from('[]{}"\\/ubnx\u00e9\U0001f600'), max_size=12)


def depth_of(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@st.composite
def nested_objects(draw):
    value = draw(st.one_of(st.integers(0, 9), TRICKY_TEXT))
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.booleans()):
            value = [draw(TRICKY_TEXT), value] if draw(st.booleans()) else [value]
        else:
            value = {draw(TRICKY_TEXT): value, "k": draw(TRICKY_TEXT)}
    return {"v": 1, draw(TRICKY_TEXT): draw(TRICKY_TEXT), "x": value}


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(obj=nested_objects(), ascii_only=st.booleans())
def test_depth_is_counted_exactly_whatever_the_strings_hold(obj, ascii_only):
    payload = json.dumps(obj, ensure_ascii=ascii_only).encode()
    if depth_of(obj) > 32:
        assert reason(payload) == "payload is nested deeper than 32 levels"
    else:
        assert decode_object(payload) == obj


SURROGATE_TEXT = st.lists(st.sampled_from(["\ud83d", "\ude00", "\ud800", "\udfff", "\ud83d\ude00", "\\", "\\u", "ud83d",
                                           "\\ud83d", "a", "\U0001f600"]), max_size=6).map("".join)


def has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(map(has_lone_surrogate, value)) or any(map(has_lone_surrogate, value.values()))
    if isinstance(value, list):
        return any(map(has_lone_surrogate, value))
    return False


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(obj=st.dictionaries(SURROGATE_TEXT, SURROGATE_TEXT | st.lists(SURROGATE_TEXT, max_size=3), max_size=3))
def test_every_lone_surrogate_is_found_and_only_those(obj):
    obj = {"v": 1, **obj}
    payload = json.dumps(obj).encode()  # ensure_ascii: a lone surrogate becomes an escape
    decoded = json.loads(payload)  # adjacent high and low escapes are one character again
    assume(len(decoded) == len(obj))  # two keys that became the same one: a duplicate key, not this test's subject
    if has_lone_surrogate(decoded):
        assert "payload has an unpaired surrogate" in reason(payload)
    else:
        assert decode_object(payload) == decoded
    # Escapes that only look like surrogates: an escaped backslash before them.
    assert decode_object(b'{"v":1,"s":"\\\\ud83d\\\\ude00"}')["s"] == "\\ud83d\\ude00"
    assert "unpaired surrogate (\\udc00)" in reason(b'{"v":1,"s":"\\\\ud83d\\udc00"}')


def test_a_reason_that_quotes_a_giant_value_is_cut():
    from lanehub.protocol.lane import CustomerRequest

    text = reason(json.dumps({"v": 1, "op": "x" * 200_000}).encode(), CustomerRequest)
    assert text.startswith("customer request: unknown op 'xxx") and len(text) == 300 and text.endswith("…")
