"""Each lane independent (issue 17 part 2, decisions D48): the lane worker takes the
lanes' events in turns, so a lane flooding one ticket does not hold up another
lane's scan behind its queue, and each lane's own events keep their order. Real
broker, edge and SQLite; no timing is asserted, only the order things happen in."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from helpers import wait_until
from shop import LANES, Lane

from edge.lane.turns import LaneTurns
from lanehub.protocol import topics
from lanehub.protocol.lane import TicketChange
from lanehub.protocol.ticket_view import TicketView

SHOP_STORE_SETTINGS = {"S001": {"max_ticket_lines": 2000}}
MILK, BREAD = "8410000000011", "2000000000015"
FLOOD = 1500


def test_lanes_take_turns_and_each_keeps_its_order():
    turns = LaneTurns()
    for n in range(5):
        turns.put("A", f"a{n}")
    turns.put("B", "b0")
    turns.put("C", "c0")
    turns.put("B", "b1")
    taken = []
    while (item := turns.take()) is not None:
        taken.append(item)
    assert taken == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
    assert not turns and len(turns) == 0


def test_a_flooded_lane_does_not_hold_up_another_lane_s_scan(shop, mqtt):
    port = shop.store_brokers["S001"].port
    flooded = f"L{next(LANES)}"
    quiet = Lane(mqtt(port), "S001", f"L{next(LANES)}")
    terminal = mqtt(port)  # the flooding lane's: a client of its own, as each lane's terminal is
    arrivals: list[tuple[str, bytes]] = []  # (lane, payload) of every change, in the order they arrived
    mqtt(port).subscribe(topics.lane_filter("S001", topics.LEAF_TICKET_CHANGE),
                         lambda m: arrivals.append((topics.parse(m.topic).lane, m.payload)))
    quiet.scan(BREAD)  # the quiet lane has a ticket before the flood
    flood_ids = [str(uuid.uuid4()) for _ in range(FLOOD)]
    for scan_id in flood_ids[:-1]:
        terminal.publish(topics.scan("S001", flooded), _scan(scan_id))
    # Sent in order: once the broker has the last, it has the whole flood, ahead of what comes next.
    assert terminal.publish_acked(topics.scan("S001", flooded), _scan(flood_ids[-1])).ok
    state = quiet.scan(BREAD, timeout=60)
    assert len(state["lines"]) == 2
    wait_until(lambda: sum(1 for lane, _ in arrivals if lane == flooded) == FLOOD, 120, 0.05, "the flood's changes")

    changes = [(lane, TicketChange.parse(payload)) for lane, payload in arrivals]
    flood_changes = [change for lane, change in changes if lane == flooded]
    assert [change.cause for change in flood_changes] == flood_ids  # the flooded lane's order kept, none lost
    seqs = [change.seq for change in flood_changes]
    assert seqs == list(range(seqs[0], seqs[0] + FLOOD))
    quiet_at = next(i for i, (_, change) in enumerate(changes) if change.cause == state["cause"])
    after = sum(1 for lane, _ in changes[quiet_at:] if lane == flooded)
    # The quiet lane's scan was served while most of the flood still waited, not after it.
    assert after >= FLOOD // 3, f"only {after} of the flood's {FLOOD} changes came after the quiet lane's"
    view = TicketView()
    assert all(view.change(change) for change in flood_changes)  # a new ticket: complete from its changes
    assert len(view.state().lines) == FLOOD and view.state().total == f"{FLOOD * Decimal('1.20'):.2f}"


def _scan(scan_id: str) -> bytes:
    return json.dumps({"v": 1, "id": scan_id, "code": MILK, "device": "SC1"}).encode()
