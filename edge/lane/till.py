"""The cashier screens' link to their lanes, inside the edge service.

A till is a lane client like any POS terminal (docs/protocol.md §2): it holds
each lane's ticket from the store broker (the retained state, then each change:
lanehub.protocol.ticket_view) and sends scans'
``add`` and the other ticket commands on the lane's ``ticket/cmd`` topic, so
the lane worker carries out a till's events exactly as a terminal's, in
order with the scanner's, and a till keeps selling while HQ is unreachable.
The store page's till views (edge.web.till) use one of these; each state that
arrives bumps ``changes``, which wakes the screens' live streams.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import TicketChange, TicketCommand, TicketState, peek_change
from lanehub.protocol.ticket_view import TicketView
from lanehub.runtime.mqtt import Incoming, MqttClient
from lanehub.web.live import Changes

log = logging.getLogger(__name__)

CAUSES_KEPT = 64  # per lane: the events a wait_for may still be waiting on
# Changes are read when a screen asks, not as they come: this link shares the edge's
# connection, whose network thread must keep up with a lane's flood of scans (D48).
# Per lane at most this many wait unread; beyond, they are dropped for the next whole state.
PENDING_KEPT = 2000


class TillLink:
    def __init__(self, client: MqttClient, store: str):
        self.client = client
        self.store = store
        self.changes = Changes()
        self._views: dict[str, TicketView] = {}
        self._pending: dict[str, list[tuple[int, bytes]]] = {}  # lane -> (seq, payload) not read yet
        # lane -> cause -> the seq of its change: a state at or past it includes that event
        self._causes: dict[str, collections.OrderedDict[str, int]] = {}
        self._lock = threading.Lock()

    def subscribe(self) -> None:
        """Every lane's ticket state (the retained ones arrive at once) and changes."""
        self.client.subscribe(topics.lane_filter(self.store, topics.LEAF_TICKET_STATE), self._on_state)
        self.client.subscribe(topics.lane_filter(self.store, topics.LEAF_TICKET_CHANGE), self._on_change)

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
            # The changes it includes need not be read at all.
            self._pending[lane] = [(seq, payload) for seq, payload in self._pending.get(lane, []) if seq > state.seq]
            self._views.setdefault(lane, TicketView()).full(state)
        self.changes.changed()

    def _on_change(self, msg: Incoming) -> None:
        """Kept unread, with its seq and cause found by their places in the payload."""
        try:
            lane = topics.parse(msg.topic).lane
        except topics.TopicError as exc:
            log.error("ticket change on %s not shown on the till: %s", msg.topic, exc)
            return
        peeked = peek_change(msg.payload)
        if lane is None or peeked is None:
            if lane is not None:
                log.error("ticket change on %s not shown on the till: not as the edge writes one", msg.topic)
            return
        with self._lock:
            causes = self._causes.setdefault(lane, collections.OrderedDict())
            seq, cause = peeked
            causes[cause] = seq
            while len(causes) > CAUSES_KEPT:
                causes.popitem(last=False)
            pending = self._pending.setdefault(lane, [])
            pending.append((seq, msg.payload))
            if len(pending) > PENDING_KEPT:  # nobody is looking: the next whole state will do
                pending.clear()
                self._views.setdefault(lane, TicketView()).behind = True
        self.changes.changed()

    def _read_pending(self, lane: str) -> TicketView | None:
        """The lane's view with the changes that came since it was last asked for (under the lock)."""
        pending = self._pending.pop(lane, [])
        if not pending:
            return self._views.get(lane)
        view = self._views.setdefault(lane, TicketView())
        for _, payload in pending:
            try:
                change = TicketChange.parse(payload)
            except PayloadError as exc:  # the edge wrote it: a bug, not a reason to stop
                log.error("ticket change of lane %s not shown on the till: %s", lane, exc)
                continue
            # Not applied (a change was missed): the lane's next whole state, within a second, is.
            view.change(change)
        return view

    def state(self, lane: str) -> TicketState | None:
        """The lane's ticket as last heard, None before anything was."""
        with self._lock:
            view = self._read_pending(lane)
            return view.state() if view is not None else None

    def lanes(self) -> list[str]:
        with self._lock:
            return sorted(lane for lane in set(self._views) | set(self._pending)
                          if (view := self._read_pending(lane)) is not None and view.state() is not None)

    def _includes(self, lane: str, state: TicketState, cause: str) -> bool:
        with self._lock:
            causes = self._causes.get(lane)
            seq = causes.get(cause) if causes is not None else None
        return state.cause == cause or (seq is not None and state.seq >= seq)

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
            if state is not None and self._includes(lane, state, cause):
                return state
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            seen = self.changes.wait(seen, left)

