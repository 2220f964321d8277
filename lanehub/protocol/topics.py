"""MQTT topic builders and parsers (DESIGN section 4, normative).

Every topic string in lanehub is built and parsed here and nowhere else, so a
rename is one edit and a typo is a test failure, not a silent mismatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "lanehub"
SYNC = f"{ROOT}/sync"

# Store, lane and device ids become topic levels: keep them to a safe alphabet
# so that no id can smuggle a "/", "+" or "#" into a topic.
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class TopicError(ValueError):
    """A topic that lanehub did not build, or an id that cannot be a topic level."""


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise TopicError(f"invalid {what} {value!r}: use letters, digits, '_', '.', '-' (max 32)")
    return value


# --- store broker -----------------------------------------------------------

def lane_topic(store: str, lane: str, leaf: str) -> str:
    return f"{ROOT}/{check_id(store, 'store')}/lane/{check_id(lane, 'lane')}/{leaf}"


def scan(store: str, lane: str) -> str:
    return lane_topic(store, lane, "scan")


def card(store: str, lane: str) -> str:
    return lane_topic(store, lane, "card")


def ticket_cmd(store: str, lane: str) -> str:
    return lane_topic(store, lane, "ticket/cmd")


def ticket_state(store: str, lane: str) -> str:
    return lane_topic(store, lane, "ticket/state")


def customer_req(store: str, lane: str) -> str:
    return lane_topic(store, lane, "customer/req")


def printer_job(store: str, lane: str, device: str) -> str:
    return lane_topic(store, lane, f"printer/{check_id(device, 'device')}/job")


def printer_result(store: str, lane: str, device: str) -> str:
    return lane_topic(store, lane, f"printer/{check_id(device, 'device')}/result")


def device_status(store: str, device: str) -> str:
    return f"{ROOT}/{check_id(store, 'store')}/device/{check_id(device, 'device')}/status"


def edge_status(store: str) -> str:
    return f"{ROOT}/{check_id(store, 'store')}/edge/status"


def error(store: str) -> str:
    return f"{ROOT}/{check_id(store, 'store')}/error"


def lane_filter(store: str, leaf: str) -> str:
    """Subscription filter for one leaf on every lane of a store."""
    return f"{ROOT}/{check_id(store, 'store')}/lane/+/{leaf}"


def device_status_filter(store: str) -> str:
    """Every device's retained status in a store."""
    return f"{ROOT}/{check_id(store, 'store')}/device/+/status"


def printer_results_filter(store: str) -> str:
    """Every printer's results on every lane of a store."""
    return lane_filter(store, "printer/+/result")


# --- HQ broker --------------------------------------------------------------

def sync_up(store: str) -> str:
    return f"{SYNC}/up/{check_id(store, 'store')}"


def sync_down() -> str:
    return f"{SYNC}/down"


def sync_store(store: str) -> str:
    return f"{SYNC}/store/{check_id(store, 'store')}"


def sync_reply(store: str, name: str = "reply") -> str:
    """An edge's response topic for its requests to HQ (under store/{store}/)."""
    return f"{sync_store(store)}/{check_id(name, 'reply name')}"


def sync_req(store: str) -> str:
    return f"{SYNC}/req/{check_id(store, 'store')}"


def sync_status(store: str) -> str:
    return f"{SYNC}/status/{check_id(store, 'store')}"


SYNC_UP_ALL = f"{SYNC}/up/+"
SYNC_REQ_ALL = f"{SYNC}/req/+"
SYNC_STATUS_ALL = f"{SYNC}/status/+"


def store_sync_filters(store: str) -> list[str]:
    """What an edge subscribes to on the HQ broker (its replies are one level below
    store/{store}: "#" would match store/{store} too, and deliver its messages twice)."""
    return [sync_down(), sync_store(store), f"{sync_store(store)}/+"]


# --- parsing ----------------------------------------------------------------

@dataclass(frozen=True)
class ParsedTopic:
    """What a topic names: its kind plus the ids in it."""

    kind: str
    store: str | None = None
    lane: str | None = None
    device: str | None = None
    name: str | None = None  # the reply name of a sync_reply topic


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (kind, re.compile("^" + pattern.replace("{id}", r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31})") + "$"))
    for kind, pattern in [
        ("scan", ROOT + "/{id}/lane/{id}/scan"),
        ("card", ROOT + "/{id}/lane/{id}/card"),
        ("ticket_cmd", ROOT + "/{id}/lane/{id}/ticket/cmd"),
        ("ticket_state", ROOT + "/{id}/lane/{id}/ticket/state"),
        ("customer_req", ROOT + "/{id}/lane/{id}/customer/req"),
        ("printer_job", ROOT + "/{id}/lane/{id}/printer/{id}/job"),
        ("printer_result", ROOT + "/{id}/lane/{id}/printer/{id}/result"),
        ("device_status", ROOT + "/{id}/device/{id}/status"),
        ("edge_status", ROOT + "/{id}/edge/status"),
        ("error", ROOT + "/{id}/error"),
        ("sync_up", SYNC + "/up/{id}"),
        ("sync_down", SYNC + "/down"),
        ("sync_store", SYNC + "/store/{id}"),
        ("sync_reply", SYNC + "/store/{id}/{id}"),
        ("sync_req", SYNC + "/req/{id}"),
        ("sync_status", SYNC + "/status/{id}"),
    ]
]

# Which captured groups are which ids, per kind.
_GROUPS = {
    "scan": ("store", "lane"),
    "card": ("store", "lane"),
    "ticket_cmd": ("store", "lane"),
    "ticket_state": ("store", "lane"),
    "customer_req": ("store", "lane"),
    "printer_job": ("store", "lane", "device"),
    "printer_result": ("store", "lane", "device"),
    "device_status": ("store", "device"),
    "edge_status": ("store",),
    "error": ("store",),
    "sync_up": ("store",),
    "sync_down": (),
    "sync_store": ("store",),
    "sync_reply": ("store", "name"),
    "sync_req": ("store",),
    "sync_status": ("store",),
}


def parse(topic: str) -> ParsedTopic:
    """Name a topic, or raise TopicError for one lanehub does not use."""
    # "lanehub/sync/..." would also match the store-broker patterns with
    # store="sync"; sync topics are tried first by checking the prefix.
    ordered = sorted(_PATTERNS, key=lambda kp: not kp[0].startswith("sync")) if topic.startswith(SYNC + "/") else _PATTERNS
    for kind, pattern in ordered:
        match = pattern.match(topic)
        if match:
            return ParsedTopic(kind, **dict(zip(_GROUPS[kind], match.groups())))
    raise TopicError(f"not a lanehub topic: {topic!r}")


# Builders by kind, so tests can walk every topic and check it round-trips.
BUILDERS = {
    "scan": lambda t: scan(t.store, t.lane),
    "card": lambda t: card(t.store, t.lane),
    "ticket_cmd": lambda t: ticket_cmd(t.store, t.lane),
    "ticket_state": lambda t: ticket_state(t.store, t.lane),
    "customer_req": lambda t: customer_req(t.store, t.lane),
    "printer_job": lambda t: printer_job(t.store, t.lane, t.device),
    "printer_result": lambda t: printer_result(t.store, t.lane, t.device),
    "device_status": lambda t: device_status(t.store, t.device),
    "edge_status": lambda t: edge_status(t.store),
    "error": lambda t: error(t.store),
    "sync_up": lambda t: sync_up(t.store),
    "sync_down": lambda t: sync_down(),
    "sync_store": lambda t: sync_store(t.store),
    "sync_reply": lambda t: sync_reply(t.store, t.name),
    "sync_req": lambda t: sync_req(t.store),
    "sync_status": lambda t: sync_status(t.store),
}


def build(parsed: ParsedTopic) -> str:
    return BUILDERS[parsed.kind](parsed)
