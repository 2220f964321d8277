"""The cashier screens' link to their lanes, inside the edge service.

A till is a lane client like any POS terminal (docs/protocol.md §2): it reads
each lane's retained ticket state from the store broker and sends scans'
``add`` and the other ticket commands on the lane's ``ticket/cmd`` topic, so
the lane worker carries out a till's events exactly as a terminal's, in
order with the scanner's, and a till keeps selling while HQ is unreachable.
The store page's till views (edge.web.till) use one of these; each state that
arrives bumps ``changes``, which wakes the screens' live streams.
"""

from __future__ import annotations

import logging
import threading
import time

from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import TicketCommand, TicketState
from lanehub.runtime.mqtt import Incoming, MqttClient
from lanehub.web.live import Changes

log = logging.getLogger(__name__)


class TillLink:
    def __init__(self, client: MqttClient, store: str):
        self.client = client
        self.store = store
        self.changes = Changes()
        self._states: dict[str, TicketState] = {}
        self._lock = threading.Lock()

    def subscribe(self) -> None:
        """Every lane's ticket state (the retained ones arrive at once)."""
        self.client.subscribe(topics.lane_filter(self.store, topics.LEAF_TICKET_STATE), self._on_state)

    @property
    def connected(self) -> bool:
        return self.client.connected.is_set()

    def _on_state(self, msg: Incoming) -> None:
        if not msg.payload:  # a cleared retained state
            return
        try:
            lane = topics.parse(msg.topic).lane
            state = TicketState.parse(msg.payload)
        except (PayloadError, topics.TopicError) as exc:
            # The edge publishes these itself: a bad one is a bug, not a reason to stop.
            log.error("ticket state on %s not shown on the till: %s", msg.topic, exc)
            return
        if lane is None:
            return
        with self._lock:
            self._states[lane] = state
        self.changes.changed()

    def state(self, lane: str) -> TicketState | None:
        """The lane's last ticket state, None before its first."""
        with self._lock:
            return self._states.get(lane)

    def lanes(self) -> list[str]:
        with self._lock:
            return sorted(self._states)

    def send(self, lane: str, command: TicketCommand) -> None:
        """Queue the command for the lane worker (QoS 1: it waits in the broker
        if the edge is restarting)."""
        self.client.publish(topics.ticket_cmd(self.store, lane), command.to_json())

    def wait_for(self, lane: str, cause: str, timeout: float) -> TicketState | None:
        """The lane's state once it is the outcome of event ``cause``, or None after ``timeout`` s."""
        seen = self.changes.version
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(lane)
            if state is not None and state.cause == cause:
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            seen = self.changes.wait(seen, left)

