"""MQTT topic builders and parsers (docs/protocol.md, normative).

Every topic string in lanehub is built and parsed here and nowhere else, so a
rename is one edit and a typo is a test failure, not a silent mismatch.

Each topic is spelled once, in ``KINDS``: a pattern whose ``{store}``, ``{lane}``,
``{device}`` and ``{name}`` placeholders are ids. The builders, ``parse()``,
``build()``, the subscription filters and the ``LEAF_*`` constants all come from it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

ROOT = "lanehub"
SYNC = f"{ROOT}/sync"
LANE = ROOT + "/{store}/lane/{lane}"  # the prefix of every lane topic; a lane kind's leaf is what follows it

# Store, lane and device ids become topic levels: keep them to a safe alphabet
# so that no id can smuggle a "/", "+" or "#" into a topic.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
ID_RE = re.compile(f"^{ID_PATTERN}$")

# What each placeholder is called in an error message.
_ID_NAMES = {"store": "store", "lane": "lane", "device": "device", "name": "reply name"}
_PLACEHOLDER = re.compile(r"\{(store|lane|device|name)\}")

# Where the payload classes live: the store broker's in lane.py, the HQ broker's in sync.py.
PAYLOAD_MODULES = {"store": "lanehub.protocol.lane", "hq": "lanehub.protocol.sync"}


class TopicError(ValueError):
    """A topic that lanehub did not build, or an id that cannot be a topic level."""


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise TopicError(f"invalid {what} {value!r}: use letters, digits, '_', '.', '-' (max 32)")
    return value


@dataclass(frozen=True)
class TopicKind:
    """One kind of topic: its name, its pattern, and the Message class it carries."""

    name: str
    pattern: str
    payload: str  # a class name in PAYLOAD_MODULES[broker] (a name, so that topics.py imports no payload)

    @property
    def broker(self) -> str:
        return "hq" if self.pattern.startswith(SYNC + "/") else "store"

    @cached_property
    def ids(self) -> tuple[str, ...]:
        """The placeholders, in the order they appear (and the builder takes them)."""
        return tuple(_PLACEHOLDER.findall(self.pattern))

    @cached_property
    def regex(self) -> re.Pattern[str]:
        parts = _PLACEHOLDER.split(self.pattern)
        # split() alternates literal text and placeholder names.
        body = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>{ID_PATTERN})" for i, part in enumerate(parts))
        return re.compile(f"^{body}$")

    @property
    def leaf(self) -> str | None:
        """What follows lanehub/{store}/lane/{lane}/ ("ticket/cmd"), for a lane topic."""
        return self.pattern.removeprefix(LANE + "/") if self.pattern.startswith(LANE + "/") else None

    def topic(self, **ids: str) -> str:
        """The topic with every placeholder filled by a checked id."""
        values = {key: check_id(ids[key], _ID_NAMES[key]) for key in self.ids}
        return self.pattern.format(**values)

    def filter(self, **ids: str) -> str:
        """A subscription filter: the ids given checked and filled in, the others "+"."""
        values = {key: check_id(ids[key], _ID_NAMES[key]) if key in ids else "+" for key in self.ids}
        return self.pattern.format(**values)

    def payload_class(self) -> type | None:
        """The Message class this topic carries, or None while it is not defined."""
        found: type | None = getattr(importlib.import_module(PAYLOAD_MODULES[self.broker]), self.payload, None)
        return found


# THE table: what each topic is called, how it is spelled, what it carries.
# No two patterns match one topic (a store named "sync" aside: see parse()), so
# the order is only for readers. Renaming a topic is one edit here, and one in
# docs/protocol.md (tests/test_protocol_doc.py checks that it names every pattern).
KINDS: dict[str, TopicKind] = {kind.name: kind for kind in (
    TopicKind("scan", LANE + "/scan", "Scan"),
    TopicKind("card", LANE + "/card", "CardRead"),
    TopicKind("ticket_cmd", LANE + "/ticket/cmd", "TicketCommand"),
    TopicKind("ticket_state", LANE + "/ticket/state", "TicketState"),
    TopicKind("ticket_change", LANE + "/ticket/change", "TicketChange"),
    TopicKind("customer_req", LANE + "/customer/req", "CustomerRequest"),
    TopicKind("printer_job", LANE + "/printer/{device}/job", "PrintJob"),
    TopicKind("printer_result", LANE + "/printer/{device}/result", "PrintResult"),
    TopicKind("device_status", ROOT + "/{store}/device/{device}/status", "DeviceStatus"),
    TopicKind("edge_status", ROOT + "/{store}/edge/status", "EdgeStatus"),
    TopicKind("error", ROOT + "/{store}/error", "ErrorReport"),
    TopicKind("sync_up", SYNC + "/up/{store}", "UpBatch"),
    TopicKind("sync_down", SYNC + "/down", "DownBatch"),
    TopicKind("sync_store", SYNC + "/store/{store}", "StoreMessage"),
    TopicKind("sync_reply", SYNC + "/store/{store}/{name}", "SyncReply"),
    TopicKind("sync_req", SYNC + "/req/{store}", "SyncRequest"),
    TopicKind("sync_status", SYNC + "/status/{store}", "SyncStatus"),
)}



def _lane_leaf(kind: str) -> str:
    leaf = KINDS[kind].leaf
    assert leaf is not None, f"{kind} is not a lane topic"
    return leaf


# Lane leaves, for lane_filter() and lane_topic().
LEAF_SCAN = _lane_leaf("scan")
LEAF_CARD = _lane_leaf("card")
LEAF_TICKET_CMD = _lane_leaf("ticket_cmd")
LEAF_TICKET_STATE = _lane_leaf("ticket_state")
LEAF_TICKET_CHANGE = _lane_leaf("ticket_change")
LEAF_CUSTOMER_REQ = _lane_leaf("customer_req")


# --- store broker -----------------------------------------------------------

def lane_topic(store: str, lane: str, leaf: str) -> str:
    """A lane topic by its leaf (LEAF_SCAN...); prefer the kind's own builder."""
    return f"{LANE.format(store=check_id(store, 'store'), lane=check_id(lane, 'lane'))}/{leaf}"


def scan(store: str, lane: str) -> str:
    return KINDS["scan"].topic(store=store, lane=lane)


def card(store: str, lane: str) -> str:
    return KINDS["card"].topic(store=store, lane=lane)


def ticket_cmd(store: str, lane: str) -> str:
    return KINDS["ticket_cmd"].topic(store=store, lane=lane)


def ticket_state(store: str, lane: str) -> str:
    return KINDS["ticket_state"].topic(store=store, lane=lane)


def ticket_change(store: str, lane: str) -> str:
    return KINDS["ticket_change"].topic(store=store, lane=lane)


def customer_req(store: str, lane: str) -> str:
    return KINDS["customer_req"].topic(store=store, lane=lane)


def printer_job(store: str, lane: str, device: str) -> str:
    return KINDS["printer_job"].topic(store=store, lane=lane, device=device)


def printer_result(store: str, lane: str, device: str) -> str:
    return KINDS["printer_result"].topic(store=store, lane=lane, device=device)


def device_status(store: str, device: str) -> str:
    return KINDS["device_status"].topic(store=store, device=device)


def edge_status(store: str) -> str:
    return KINDS["edge_status"].topic(store=store)


def error(store: str) -> str:
    return KINDS["error"].topic(store=store)


def lane_filter(store: str, leaf: str) -> str:
    """Subscription filter for one leaf on every lane of a store."""
    return f"{LANE.format(store=check_id(store, 'store'), lane='+')}/{leaf}"


def device_status_filter(store: str) -> str:
    """Every device's retained status in a store."""
    return KINDS["device_status"].filter(store=store)


def printer_results_filter(store: str) -> str:
    """Every printer's results on every lane of a store."""
    return KINDS["printer_result"].filter(store=store)


# --- HQ broker --------------------------------------------------------------

def sync_up(store: str) -> str:
    return KINDS["sync_up"].topic(store=store)


def sync_down() -> str:
    return KINDS["sync_down"].topic()


def sync_store(store: str) -> str:
    return KINDS["sync_store"].topic(store=store)


def sync_reply(store: str, name: str = "reply") -> str:
    """An edge's response topic for its requests to HQ (under store/{store}/)."""
    return KINDS["sync_reply"].topic(store=store, name=name)


def sync_replies_filter(store: str) -> str:
    """Every reply topic of a store: one level below store/{store} ("#" would match
    store/{store} too, and deliver its messages twice)."""
    return KINDS["sync_reply"].filter(store=store)


def sync_reply_prefix(store: str) -> str:
    """What every reply topic of a store starts with: HQ answers only there."""
    return sync_store(store) + "/"


def sync_req(store: str) -> str:
    return KINDS["sync_req"].topic(store=store)


def sync_status(store: str) -> str:
    return KINDS["sync_status"].topic(store=store)


SYNC_UP_ALL = KINDS["sync_up"].filter()
SYNC_REQ_ALL = KINDS["sync_req"].filter()
SYNC_STATUS_ALL = KINDS["sync_status"].filter()

# HQ processes share the stores' traffic: each message of a shared subscription's
# group goes to one of them (MQTT 5 shared subscriptions, docs/scaling.md).
HQ_SHARE_GROUP = "lanehub-hq"
SHARE_PREFIX = "$share/"


def shared(topic_filter: str, group: str = HQ_SHARE_GROUP) -> str:
    """The shared subscription of ``group`` to ``topic_filter``."""
    return f"{SHARE_PREFIX}{group}/{topic_filter}"


def unshared(topic_filter: str) -> str:
    """The filter a (possibly shared) subscription matches topics with."""
    if topic_filter.startswith(SHARE_PREFIX):
        return topic_filter.split("/", 2)[2]
    return topic_filter


# --- parsing ----------------------------------------------------------------

@dataclass(frozen=True)
class ParsedTopic:
    """What a topic names: its kind plus the ids in it."""

    kind: str
    store: str | None = None
    lane: str | None = None
    device: str | None = None
    name: str | None = None  # the reply name of a sync_reply topic


# "lanehub/sync/..." would also match the store-broker patterns with store="sync":
# for such a topic the HQ broker's kinds are tried first.
_STORE_FIRST = tuple(KINDS.values())
_HQ_FIRST = tuple(sorted(_STORE_FIRST, key=lambda kind: kind.broker != "hq"))


def parse(topic: str) -> ParsedTopic:
    """Name a topic, or raise TopicError for one lanehub does not use."""
    for kind in _HQ_FIRST if topic.startswith(SYNC + "/") else _STORE_FIRST:
        match = kind.regex.match(topic)
        if match:
            return ParsedTopic(kind.name, **match.groupdict())
    raise TopicError(f"not a lanehub topic: {topic!r}")


# Builders by kind, so tests can walk every topic and check it round-trips.
def _builder(kind: TopicKind) -> Callable[[ParsedTopic], str]:
    return lambda parsed: kind.topic(**{key: getattr(parsed, key) for key in kind.ids})


BUILDERS: dict[str, Callable[[ParsedTopic], str]] = {kind.name: _builder(kind) for kind in KINDS.values()}


def build(parsed: ParsedTopic) -> str:
    return BUILDERS[parsed.kind](parsed)
