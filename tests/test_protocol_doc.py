"""docs/protocol.md is held to lanehub.protocol: every topic kind of the table in
lanehub/protocol/topics.py and every payload class is named there, and every JSON
example is one the code reads as the class the doc says it is.

How the doc says which class an example is: the line right before each ```json
block is a marker, ``<!-- payload: ClassName -->`` (then every JSON object in the
block must parse as that class), or ``<!-- not a payload: why -->``. A block
without a marker fails, so a new example cannot go unchecked. Classes are found,
not listed: a payload class added to lanehub.protocol is checked the day it lands."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import lanehub.protocol
from lanehub.protocol import topics
from lanehub.protocol.envelope import Message, PayloadError

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
DOC = DOC_PATH.read_text()

FENCE = re.compile(r"^```json\n(?P<body>.*?)^```$", re.M | re.S)
MARKER = re.compile(r"^<!-- (?:payload: (?P<cls>\w+)|not a payload: [^>]+) -->$")
INLINE_CODE = re.compile(r"`([^`]+)`")


def protocol_classes() -> dict[str, type]:
    """Every class defined in a module of lanehub.protocol, by name."""
    found = {}
    for info in pkgutil.iter_modules(lanehub.protocol.__path__, "lanehub.protocol."):
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                found[name] = cls
    return found


CLASSES = protocol_classes()
MESSAGES = sorted(name for name, cls in CLASSES.items() if issubclass(cls, Message) and cls is not Message)


def json_blocks() -> tuple[list[tuple[int, str | None, str]], list[int]]:
    """(line, the class its marker names or None, body) of every marked ```json block,
    and the lines of the blocks without a marker."""
    blocks, unmarked = [], []
    for match in FENCE.finditer(DOC):
        line = DOC.count("\n", 0, match.start()) + 1
        before = DOC[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(before)
        if marker is None:
            unmarked.append(line)
        else:
            blocks.append((line, marker.group("cls"), match.group("body")))
    return blocks, unmarked


BLOCKS, UNMARKED = json_blocks()
PAYLOAD_BLOCKS = [(line, cls, body) for line, cls, body in BLOCKS if cls]


def test_every_json_block_says_what_it_is():
    assert not UNMARKED, (f"docs/protocol.md: the ```json blocks at lines {UNMARKED} need a marker on the line "
                          "before: <!-- payload: ClassName --> or <!-- not a payload: why -->")


def objects_in(body: str) -> list[dict]:
    """The JSON objects of a block, one after another (a block may show several)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(body) and body[at].isspace():
            at += 1
        if at == len(body):
            return found
        value, at = decoder.raw_decode(body, at)
        found.append(value)


def keys_not_in(example, written, path: str = "") -> list[str]:
    """The keys of an example (nested parts too) that the message, written again, lacks."""
    if isinstance(example, dict) and isinstance(written, dict):
        return [missing for key, value in example.items()
                for missing in ([path + key] if key not in written else keys_not_in(value, written[key], f"{path}{key}."))]
    if isinstance(example, list) and isinstance(written, (list, tuple)) and len(example) == len(written):
        return [missing for i, (a, b) in enumerate(zip(example, written)) for missing in keys_not_in(a, b, f"{path}[{i}].")]
    return []


def read_as(cls: type, data: dict):
    """An example read the way the code reads it: a payload from its bytes, a part of one
    (a receipt in a print job) with its from_dict."""
    if issubclass(cls, Message):
        return cls.parse(json.dumps(data).encode())
    return cls.from_dict(data)


@pytest.mark.parametrize("kind", list(topics.KINDS))
def test_every_topic_kind_is_in_the_doc(kind):
    pattern = topics.KINDS[kind].pattern
    assert f"`{pattern}`" in DOC, f"docs/protocol.md does not name the {kind} topic `{pattern}`"


@pytest.mark.parametrize("kind", list(topics.KINDS))
def test_the_doc_names_each_topic_s_payload_in_its_table_row(kind):
    entry = topics.KINDS[kind]
    rows = [line for line in DOC.splitlines() if line.startswith(f"| `{entry.pattern}` |")]
    assert rows, f"docs/protocol.md has no table row for `{entry.pattern}`"
    assert all(re.search(rf"\b{entry.payload}\b", row) for row in rows), \
        f"the row of `{entry.pattern}` should name its payload {entry.payload}"


@pytest.mark.parametrize("name", MESSAGES)
def test_every_payload_class_is_named_in_the_doc(name):
    assert re.search(rf"\b{name}\b", DOC), f"docs/protocol.md never names {name} ({CLASSES[name].__module__})"


def test_every_class_a_topic_carries_is_a_payload():
    for kind in topics.KINDS.values():
        cls = kind.payload_class()
        assert cls is not None, f"{kind.name} carries {kind.payload}, which {topics.PAYLOAD_MODULES[kind.broker]} lacks"
        assert issubclass(cls, Message), f"{kind.payload} is not a Message"


@pytest.mark.parametrize("line,name,body", PAYLOAD_BLOCKS, ids=[f"line{line}-{name}" for line, name, _ in PAYLOAD_BLOCKS])
def test_every_json_example_parses_as_its_class(line, name, body):
    assert name in CLASSES, f"docs/protocol.md:{line}: the marker names {name}, which lanehub.protocol does not define"
    cls = CLASSES[name]
    examples = objects_in(body)
    assert examples, f"docs/protocol.md:{line}: an empty example"
    for data in examples:
        try:
            message = read_as(cls, data)
        except PayloadError as exc:
            pytest.fail(f"docs/protocol.md:{line}: this {name} example does not parse: {exc}")
        # Unknown keys are ignored on the wire, so a misspelt one would pass unnoticed:
        # every key of the example must come back when the message is written again.
        unknown = keys_not_in(data, message.to_dict())
        assert not unknown, f"docs/protocol.md:{line}: {name} has no field {', '.join(unknown)}"


def test_every_payload_class_has_an_example_or_says_why_not():
    """A payload class the doc shows no example of is listed here, on purpose."""
    shown = {name for _, name, _ in PAYLOAD_BLOCKS}
    described_inline = {"SyncRequest"}  # §3.4's table, one request per op (checked below)
    missing = sorted(set(MESSAGES) - shown - described_inline)
    assert missing == [], f"docs/protocol.md has no ```json example of {', '.join(missing)}"


def inline_objects() -> list[tuple[int, dict]]:
    """Inline `{"v": 1, ...}` spans that are whole JSON objects: payloads quoted in the text
    (a span may wrap onto the next line; fenced blocks are blanked out first)."""
    text = re.sub(r"^```.*?^```$", lambda block: "\n" * block.group().count("\n"), DOC, flags=re.M | re.S)
    found = []
    for span in INLINE_CODE.finditer(text):
        code = span.group(1)
        if code.startswith("{") and '"v"' in code:
            try:
                data = json.loads(code)
            except ValueError:
                continue  # an elided shape (`{...}`), not an example
            found.append((text.count("\n", 0, span.start()) + 1, data))
    return found


INLINE = inline_objects()


@pytest.mark.parametrize("line,data", INLINE, ids=[f"line{line}" for line, _ in INLINE])
def test_every_inline_payload_is_one_some_class_reads(line, data):
    """The text does not say which class an inline payload is: some class that has
    every one of its keys must read it."""
    readers = []
    for name in MESSAGES:
        if set(data) - {"v"} - {f.name for f in dataclasses.fields(CLASSES[name])}:
            continue
        try:
            CLASSES[name].parse(json.dumps(data).encode())
        except PayloadError:
            continue
        readers.append(name)
    assert readers, f"docs/protocol.md:{line}: no payload class with these keys reads {json.dumps(data)}"


def test_the_sync_request_table_is_what_sync_request_reads():
    rows = re.findall(r"^\| `(\w+)` \| `(\{[^`]*\})` \|", DOC, re.M)
    ops = set()
    for op, request in rows:
        data = json.loads(request)
        message = CLASSES["SyncRequest"].parse(request.encode())
        assert message.op == op
        assert not set(data) - {f.name for f in dataclasses.fields(CLASSES["SyncRequest"])} - {"v"}
        ops.add(op)
    assert ops == set(CLASSES["SyncRequest"].OPS), "the table of §3.4 should show every SyncRequest op once"


def test_error_report_examples_give_the_code_s_reason():
    """An ErrorReport example whose excerpt is a whole payload says what the code says of it."""
    checked = 0
    for line, name, body in PAYLOAD_BLOCKS:
        if name != "ErrorReport":
            continue
        for report in objects_in(body):
            cls = topics.KINDS[topics.parse(report["topic"]).kind].payload_class()
            try:
                json.loads(report["payload_excerpt"])
            except ValueError:
                continue  # cut at 200 characters: nothing to compare
            with pytest.raises(PayloadError) as refused:
                cls.parse(report["payload_excerpt"].encode())
            assert str(refused.value) == report["reason"], f"docs/protocol.md:{line}"
            checked += 1
    assert checked


def test_the_files_and_names_the_doc_cites_exist():
    """`lanehub/protocol/lane.py`, `lanehub.protocol.envelope.excerpt`: a move or a rename breaks the doc."""
    root = DOC_PATH.parent.parent
    missing = [path for path in sorted(set(re.findall(r"`((?:lanehub|edge|hq|devices)/[\w/.]+\.py)", DOC)))
               if not (root / path).exists()]
    for dotted in sorted(set(re.findall(r"`(lanehub(?:\.\w+)+)`", DOC))):
        parts = dotted.split(".")
        # The longest importable prefix is the module; the rest are attributes.
        for cut in range(len(parts), 0, -1):
            try:
                found = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attribute in parts[cut:]:
                found = getattr(found, attribute, None)
            if found is None:
                missing.append(dotted)
            break
    assert missing == [], f"docs/protocol.md cites what does not exist: {', '.join(missing)}"


def wire_classes() -> dict[str, type]:
    """Every dataclass of lane.py and sync.py, payloads and the objects inside them,
    but the two bases (PayloadPart, ReplyData), which hold nothing."""
    found = {}
    for module in ("lanehub.protocol.lane", "lanehub.protocol.sync"):
        for name, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if cls.__module__ == module and dataclasses.is_dataclass(cls) and dataclasses.fields(cls):
                found[name] = cls
    return found


WIRE = wire_classes()
PARTS = sorted(name for name, cls in WIRE.items() if not issubclass(cls, Message))


def test_the_wire_classes_are_found():
    assert {"Scan", "TicketState", "SyncReply", "TicketLine", "Receipt", "Rejection", "HelloReply"} <= set(WIRE)
    assert "TicketLine" in PARTS and "Scan" not in PARTS


@pytest.mark.parametrize("name", sorted(WIRE))
def test_every_class_of_lane_and_sync_is_named_in_the_doc(name):
    assert re.search(rf"\b{name}\b", DOC), f"docs/protocol.md never names {name} ({WIRE[name].__module__})"


@pytest.mark.parametrize("name", PARTS)
def test_every_object_inside_a_payload_has_a_row_with_every_field(name):
    rows = [line for line in DOC.splitlines() if line.startswith(f"| {name} |")]
    assert len(rows) == 1, f"docs/protocol.md §24 should have one row for {name}"
    fields_cell = rows[0].rstrip(" |").rsplit(" | ", 1)[1]
    documented = set(INLINE_CODE.findall(fields_cell))
    missing = [f.name for f in dataclasses.fields(WIRE[name]) if f.name not in documented]
    assert not missing, f"the row of {name} in docs/protocol.md §24 lacks {', '.join(missing)}"


def test_each_sync_op_names_the_class_that_reads_its_reply():
    from lanehub.protocol.sync import REPLY_TYPES

    text = re.sub(r"\s+", " ", DOC)  # a pair may wrap onto the next line
    for op, cls in REPLY_TYPES.items():
        assert f"`{op}`: {cls.__name__}" in text, f"docs/protocol.md §3.4 should say `{op}`: {cls.__name__}"
        assert f"| {cls.__name__} | SyncReply `data` for `{op}` |" in DOC


def test_the_routes_table_names_every_entity_once_with_its_route():
    from lanehub.domain.model import ENTITIES
    from lanehub.protocol.routes import EVERY_STORE, ORIGIN_STORE, route_of

    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1] for line in DOC.splitlines()
            if line.startswith(("| every store |", "| origin store |"))}
    listed = {name.strip(): route for route, cell in rows.items() for name in cell.split(",")}
    assert sorted(listed) == sorted(ENTITIES)
    assert {name: {"every store": EVERY_STORE, "origin store": ORIGIN_STORE}[route] for name, route in listed.items()} == {
        name: route_of(name) for name in ENTITIES}
