"""Standing fuzz test: generated malformed payloads (deep nesting, huge numbers,
lone surrogates, wrong types, bad UTF-8, truncated JSON, wrong versions, giant
strings within the size limit, random bytes) on every topic the edge and HQ
subscribe to, between valid scans on a lane, against a running chain. Every
malformed payload is reported on the error topic (a request's also answered),
no scan around them is lost, and a close still makes a sale at HQ.

Bounded and reproducible: 7 examples of one payload per topic (84 in all),
derandomized, no shrinking (each try runs against the chain)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from broker_users import hq_operator, store_twin
from helpers import db_query, edge_db, hq_db, wait_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from shop import PRODUCTS_CSV, Lane, announce_printer

from lanehub.protocol import lane as lane_messages  # noqa: F401  (its messages are Message subclasses too)
from lanehub.protocol import topics
from lanehub.protocol.acl import hq_acl_file
from lanehub.protocol.envelope import Message, PayloadError

STORE = "S001"
JUNK_LANE, DEVICE, JUNK_REPLY = "LJ", "P1", "junk"
# Topic kinds lanehub's services only publish: nothing of lanehub reads them, so
# garbage there must be reported nowhere. Every other kind of lanehub/protocol/topics.py is
# read by the edge or HQ (the test checks both: a report for each payload on those,
# none on these). The error topic is the test's oracle: nothing is sent there.
PUBLISHED_ONLY = {"ticket_state", "ticket_change", "printer_job", "edge_status", "error"}
CONSUMED = sorted(set(topics.BUILDERS) - PUBLISHED_ONLY)
# On the HQ broker a store may write only what its ACL says; HQ reads those. The
# rest of sync/ is HQ's to write, and the edge reads it.
def writes_of(acl: str, user: str) -> set[str]:
    topics_written, current = set(), None
    for line in acl.splitlines():
        if line.startswith("user "):
            current = line.split()[1]
        elif current == user and line.startswith("topic write "):
            topics_written.add(line.split()[-1])
    return topics_written


STORE_WRITES = writes_of(hq_acl_file("hq", [STORE]), STORE)


def message_classes() -> list[type]:
    """Every payload lanehub has (the subclasses of Message, which itself has no fields)."""
    found, todo = [], list(Message.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        found.append(cls)
    return found


MESSAGE_CLASSES = message_classes()
FIELD_NAMES = sorted({name for cls in MESSAGE_CLASSES for name in (f.name for f in dataclasses.fields(cls))})


def obj(**fields) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


def is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


CONTAINERS = st.lists(st.integers(-5, 5), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
# Every field of every message a list or an object: each message has a required text
# or true/false field, so none of them can parse.
WRONG_TYPES = st.fixed_dictionaries({name: CONTAINERS for name in FIELD_NAMES})

MALFORMED = st.one_of(
    st.integers(33, 3_000).map(lambda d: b'{"v":1,"id":"x","code":' + b"[" * d + b"]" * d + b"}"),
    st.integers(33, 2_000).map(lambda d: b'{"v":1,"id":"x","x":' + b'{"a":' * d + b"1" + b"}" * d + b"}"),
    st.integers(20, 6_000).map(lambda n: b'{"v":1,"id":"x","ts":' + b"9" * n + b"}"),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400", b"9223372036854775808"]).map(
        lambda n: b'{"v":1,"id":"x","ts":' + n + b"}"),
    st.sampled_from(["\\ud800", "\\udfff", "a\\udc00b", "\\ud83d x", "\\\\\\ud800"]).map(
        lambda s: b'{"v":1,"id":"x","code":"' + s.encode() + b'"}'),
    st.sampled_from(["\\ud800", "k\\udbff"]).map(lambda s: b'{"v":1,"' + s.encode() + b'":1}'),
    WRONG_TYPES.map(lambda fields: obj(**fields)),
    st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]).map(
        lambda bad: b'{"v":1,"id":"' + bad + b'","code":"1"}'),
    st.binary(max_size=40).map(lambda data: data + b"\xfe"),
    st.tuples(st.sampled_from([obj(id="e1", code="8410000000011", device="SC1"), obj(op="search", q="hopper"),
                               obj(op="hello", id="", from_seq=0, limit=1000), obj(store=STORE, changes=[])]),
              st.floats(0, 0.999)).map(lambda t: t[0][: int(len(t[0]) * t[1])] or b"{"),
    st.sampled_from([0, 2, "1", True, None, 1.0, [1]]).map(lambda v: json.dumps({"v": v, "id": "x", "op": "search"}).encode()),
    st.integers(64 * 1024, 200 * 1024).flatmap(lambda n: WRONG_TYPES.map(lambda fields: obj(**fields, note="x" * n))),
    st.binary(min_size=1, max_size=200).filter(lambda data: not is_json_object(data)),
    st.just(b'{"v":1,"id":"a","id":"b","code":"1"}'),
)


def refused_by_every_message(payload: bytes) -> bool:
    for cls in MESSAGE_CLASSES:
        try:
            cls.parse(payload)
        except PayloadError:
            continue
        return False
    return True


def topic_of(kind: str, lane: str) -> str:
    """The kind's topic in this test's store (each builder takes the ids it needs)."""
    return topics.build(topics.ParsedTopic(kind, store=STORE, lane=lane, device=DEVICE, name=JUNK_REPLY))


@pytest.fixture
def selling_chain(make_chain):
    chain = make_chain(stores=(STORE,), store_settings={STORE: {"printer": "printer"}})
    csv = chain.workdir / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))
    announce_printer(chain.store_brokers[STORE].port, STORE, "printer")
    wait_until(lambda: db_query(edge_db(chain, STORE), "SELECT count(*) FROM products")[0][0] == 3, 20,
               message="the catalogue at the store")
    return chain


PRICES = {"8410000000011": Decimal("1.20"), "2000000000015": Decimal("0.95")}


def test_the_kinds_are_all_classified():
    assert PUBLISHED_ONLY <= set(topics.BUILDERS), "a published-only kind lanehub/protocol/topics.py no longer has"
    assert {"sync_up", "sync_req", "sync_status"} <= {topics.parse(t).kind for t in STORE_WRITES}


@settings(max_examples=7, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(data=st.data())
def test_malformed_payloads_on_every_topic_are_reported_and_lose_nothing(selling_chain, mqtt, data):
    chain = selling_chain
    if not hasattr(chain, "fuzz"):  # one set of clients and counters for every example
        chain.fuzz = Fuzz(chain, mqtt)
    fuzz = chain.fuzz
    lane = Lane(fuzz.store_side, STORE, f"L{next(fuzz.lanes)}")
    order = data.draw(st.permutations(CONSUMED), label="topic order")
    scanned = []
    for kind in order:
        payload = data.draw(MALFORMED, label=kind)
        assert refused_by_every_message(payload), payload[:200]  # the generator makes malformed payloads only
        fuzz.send(kind, topic_of(kind, lane.lane), payload)
        code = data.draw(st.sampled_from(sorted(PRICES)), label="scan")
        lane._send(topics.scan(STORE, lane.lane), {"code": code, "device": "SC1"})
        scanned.append(code)
    for kind in sorted(PUBLISHED_ONLY - {"error"}):
        fuzz.store_side.publish(topic_of(kind, JUNK_LANE), b"\xff not for anyone")

    state = lane.scan("8410000000011")  # the lane worker has handled everything sent before it
    scanned.append("8410000000011")
    assert [l["barcode"] for l in state["lines"]] == scanned, "a scan was lost or reordered"
    assert Decimal(state["total"]) == sum(PRICES[c] for c in scanned)
    fuzz.check_reports()

    state = lane.cmd("close")  # normal work still works
    assert state["status"] == "closed"
    sale = wait_until(lambda: db_query(hq_db(chain), "SELECT total FROM sales WHERE ticket = ?", (state["ticket"],)),
                      20, message="the sale at HQ")
    assert Decimal(sale[0]["total"]) == sum(PRICES[c] for c in scanned)


class Fuzz:
    """The clients that publish, the reports and replies they see, and what is expected."""

    def __init__(self, chain, mqtt):
        self.lanes = itertools.count(1)
        self.store_side = mqtt(chain.store_brokers[STORE].port)
        self.hq_user = hq_operator(chain, mqtt)  # HQ's rights and S001's, beside the running HQ and edge
        self.store_user = store_twin(chain, mqtt, STORE)
        self.store_errors: list[dict] = []
        self.hq_errors: list[dict] = []
        self.replies: dict[bytes, dict] = {}
        self.expected_store, self.expected_hq, self.expected_replies = Counter(), Counter(), []
        self.store_side.subscribe(topics.error(STORE), lambda m: self.store_errors.append(json.loads(m.payload)))
        self.hq_user.subscribe(topics.error("hq"), lambda m: self.hq_errors.append(json.loads(m.payload)))
        self.store_side.subscribe("test/fuzz/reply", self._reply)
        self.store_user.subscribe(topics.sync_reply(STORE, "fuzz"), self._reply)
        time.sleep(0.3)

    def _reply(self, msg) -> None:
        self.replies[msg.correlation] = json.loads(msg.payload)

    def send(self, kind: str, topic: str, payload: bytes) -> None:
        on_hq_broker = kind.startswith("sync_")
        by_store = topic in STORE_WRITES
        client = (self.store_user if by_store else self.hq_user) if on_hq_broker else self.store_side
        request = kind.endswith("_req")
        correlation = uuid.uuid4().bytes if request else None
        reply_to = (topics.sync_reply(STORE, "fuzz") if on_hq_broker else "test/fuzz/reply") if request else None
        client.publish(topic, payload, response_topic=reply_to, correlation=correlation)
        self.expected_store[topic] += 1  # the edge's report, or HQ's passed on by the edge ("HQ: ...")
        if by_store:
            self.expected_hq[topic] += 1
        if request:
            self.expected_replies.append(correlation)

    def check_reports(self) -> None:
        def counts():
            return (Counter(r["topic"] for r in self.store_errors if r["topic"] in self.expected_store),
                    Counter(r["topic"] for r in self.hq_errors if r["topic"] in self.expected_hq))

        wait_until(lambda: counts() == (self.expected_store, self.expected_hq)
                   and all(c in self.replies for c in self.expected_replies), 20, 0.1,
                   message="a report for every malformed payload and a reply to every request")
        time.sleep(0.3)  # a second report about the same payload would be here by now
        assert counts() == (self.expected_store, self.expected_hq)
        for report in self.store_errors + self.hq_errors:
            assert report["reason"] and not report["reason"].startswith(("internal error", "HQ: internal error")), report
        junk = {topic_of(kind, JUNK_LANE) for kind in PUBLISHED_ONLY - {"error"}}
        assert not [r for r in self.store_errors if r["topic"] in junk], "a report about a topic nothing reads"
        for correlation in self.expected_replies:
            assert self.replies[correlation]["ok"] is False and self.replies[correlation]["error"]
