"""Topics are built and parsed only by lanehub.protocol.topics, and every topic round-trips."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from lanehub.protocol import topics

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = topics.ParsedTopic


@pytest.mark.parametrize("kind", sorted(topics.BUILDERS))
def test_every_topic_round_trips(kind):
    parsed = SAMPLE(kind, store="S001", lane="L1", device="P1", name="reply")
    topic = topics.build(parsed)
    again = topics.parse(topic)
    assert again.kind == kind
    assert topics.build(again) == topic


IDS = {"store": "S-1.a", "lane": "L_2", "device": "P3", "name": "r4"}


@pytest.mark.parametrize("kind", list(topics.KINDS))
def test_every_kind_in_the_table_round_trips_with_its_ids(kind):
    """build -> parse -> build, and parse gives back exactly the ids the pattern has."""
    entry = topics.KINDS[kind]
    topic = topics.build(SAMPLE(kind, **IDS))
    assert topic == entry.pattern.format(**IDS)
    parsed = topics.parse(topic)
    assert parsed == SAMPLE(kind, **{key: IDS[key] for key in entry.ids})
    assert topics.build(parsed) == topic


@pytest.mark.parametrize("kind", list(topics.KINDS))
def test_every_kind_has_its_builder(kind):
    """The builder of a kind is the module function of its name, taking its ids in order."""
    entry = topics.KINDS[kind]
    builder = getattr(topics, kind)
    assert list(inspect.signature(builder).parameters) == list(entry.ids)
    assert builder(*(IDS[key] for key in entry.ids)) == topics.build(SAMPLE(kind, **IDS))


def test_the_table_spells_each_topic_once():
    patterns = [entry.pattern for entry in topics.KINDS.values()]
    assert len(set(patterns)) == len(patterns)
    assert all(name == entry.name for name, entry in topics.KINDS.items())
    assert list(topics.BUILDERS) == list(topics.KINDS)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT's filter match, for "+" (lanehub subscribes with no "#")."""
    want, have = topic_filter.split("/"), topic.split("/")
    return len(want) == len(have) and all(w in ("+", h) for w, h in zip(want, have))


@pytest.mark.parametrize("kind", list(topics.KINDS))
def test_a_kind_s_filter_matches_its_topics_and_no_other_kind_s(kind):
    entry = topics.KINDS[kind]
    every = entry.filter()
    assert every.count("+") == len(entry.ids)
    samples = [topics.build(SAMPLE(name, **IDS)) for name in topics.KINDS]
    assert [topic for topic in samples if matches(every, topic)] == [topics.build(SAMPLE(kind, **IDS))]


def test_filters():
    assert topics.lane_filter("S001", topics.LEAF_SCAN) == "lanehub/S001/lane/+/scan"
    assert topics.device_status_filter("S001") == "lanehub/S001/device/+/status"
    assert topics.printer_results_filter("S001") == "lanehub/S001/lane/+/printer/+/result"
    assert topics.sync_replies_filter("S001") == "lanehub/sync/store/S001/+"
    assert topics.sync_reply_prefix("S001") == "lanehub/sync/store/S001/"
    assert (topics.SYNC_UP_ALL, topics.SYNC_REQ_ALL, topics.SYNC_STATUS_ALL) == (
        "lanehub/sync/up/+", "lanehub/sync/req/+", "lanehub/sync/status/+")
    with pytest.raises(topics.TopicError):
        topics.device_status_filter("S/1")


def test_leaves():
    assert (topics.LEAF_SCAN, topics.LEAF_CARD, topics.LEAF_TICKET_CMD, topics.LEAF_TICKET_STATE,
            topics.LEAF_CUSTOMER_REQ) == ("scan", "card", "ticket/cmd", "ticket/state", "customer/req")
    for kind in ("scan", "card", "ticket_cmd", "ticket_state", "customer_req"):
        assert topics.lane_topic("S001", "L1", topics.KINDS[kind].leaf) == getattr(topics, kind)("S001", "L1")
    assert topics.KINDS["sync_up"].leaf is None


def test_a_store_called_sync_is_not_an_hq_topic():
    """lanehub/sync/... is the HQ broker's; a store-broker topic of a store "sync" still parses as one."""
    assert topics.parse("lanehub/sync/store/S001").kind == "sync_store"
    assert topics.parse("lanehub/sync/error") == SAMPLE("error", store="sync")


def test_normative_topic_names():
    assert topics.scan("S001", "L1") == "lanehub/S001/lane/L1/scan"
    assert topics.card("S001", "L1") == "lanehub/S001/lane/L1/card"
    assert topics.ticket_cmd("S001", "L1") == "lanehub/S001/lane/L1/ticket/cmd"
    assert topics.ticket_state("S001", "L1") == "lanehub/S001/lane/L1/ticket/state"
    assert topics.customer_req("S001", "L1") == "lanehub/S001/lane/L1/customer/req"
    assert topics.printer_job("S001", "L1", "P1") == "lanehub/S001/lane/L1/printer/P1/job"
    assert topics.printer_result("S001", "L1", "P1") == "lanehub/S001/lane/L1/printer/P1/result"
    assert topics.device_status("S001", "SC1") == "lanehub/S001/device/SC1/status"
    assert topics.edge_status("S001") == "lanehub/S001/edge/status"
    assert topics.error("S001") == "lanehub/S001/error"
    assert topics.sync_up("S001") == "lanehub/sync/up/S001"
    assert topics.sync_down() == "lanehub/sync/down"
    assert topics.sync_store("S001") == "lanehub/sync/store/S001"
    assert topics.sync_req("S001") == "lanehub/sync/req/S001"
    assert topics.sync_status("S001") == "lanehub/sync/status/S001"
    assert topics.sync_reply("S001").startswith(topics.sync_store("S001") + "/")


@pytest.mark.parametrize("bad", ["", "S/1", "S+", "S#", "a" * 33, "-S1", "S 1"])
def test_ids_that_would_break_a_topic_are_refused(bad):
    with pytest.raises(topics.TopicError):
        topics.scan(bad, "L1")


@pytest.mark.parametrize("topic", ["lanehub/S001/lane/L1", "other/S001/error", "lanehub/sync/up", "lanehub/S001/lane/L1/scan/x"])
def test_foreign_topics_do_not_parse(topic):
    with pytest.raises(topics.TopicError):
        topics.parse(topic)


def test_no_topic_string_literals_outside_core():
    offenders = []
    for package in ("edge", "hq", "devices", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"[\"']lanehub/", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


def test_lanehub_imports_no_site_package():
    offenders = []
    for path in (ROOT / "lanehub").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from|import)\s+(edge|hq|devices|bench)\b", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_sites_do_not_import_each_other():
    offenders = []
    for package, others in (("edge", "hq|devices"), ("hq", "edge|devices"), ("devices", "edge|hq")):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.match(rf"\s*(from|import)\s+({others})\b", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []
