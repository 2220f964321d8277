"""The benchmarks' own topics. They are not lanehub's wire (lanehub.protocol.topics is):
everything here lives under ``bench/``, which no service subscribes to."""

from __future__ import annotations

PREFIX = "bench/"
# request() gets its reply by correlation, but only on a topic the client is subscribed to.
REPLIES = PREFIX + "#"
SEARCH_REPLY = PREFIX + "search"
LANE_REPLY = PREFIX + "reply"

# The floors of the lane benchmark (bench/floor.py): a kind ("echo", "durable") asks on
# one topic and its responder answers on another.
ECHO = "echo"
DURABLE = "durable"


def lane_reply(store: str) -> str:
    return f"{LANE_REPLY}/{store}"


def floor_ask(kind: str) -> str:
    return f"{PREFIX}floor/{kind}/ask"


def floor_answer(kind: str) -> str:
    return f"{PREFIX}floor/{kind}/answer"
