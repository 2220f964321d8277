"""Topics are built and parsed only by lanehub.protocol.topics, and every topic round-trips."""

from __future__ import annotations

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
