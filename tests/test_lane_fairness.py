"""Each lane independent (issue 17 part 2, decisions D48): the lane worker takes the
lanes' events in turns, so a lane flooding one ticket does not hold up another
lane's scan behind its queue, and each lane's own events keep their order. Real
broker, edge and SQLite; no timing is asserted, only the order things happen in."""

from __future__ import annotations

import json
import uuid

from helpers import wait_until
from shop import LANES, Lane

from edge.lane.turns import LaneTurns
from lanehub.protocol import topics
from lanehub.protocol.lane import TicketChange

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
    client = mqtt(shop.store_brokers["S001"].port)
    flooded = Lane(client, "S001", f"L{next(LANES)}")
    quiet = Lane(client, "S001", f"L{next(LANES)}")
    arrivals: list[tuple[str, str]] = []  # (lane, cause), in the order the changes arrived
    # On a client of its own: a second subscription that matches the lanes' topics would
    # bring each change twice.
    mqtt(shop.store_brokers["S001"].port).subscribe(
        topics.lane_filter("S001", topics.LEAF_TICKET_CHANGE),
        lambda m: arrivals.append((topics.parse(m.topic).lane, json.loads(m.payload)["cause"])))
    quiet.scan(BREAD)  # both lanes have a ticket before the flood
    flooded.scan(MILK)
    flood_ids = [str(uuid.uuid4()) for _ in range(FLOOD)]
    for scan_id in flood_ids:
        client.publish(topics.scan("S001", flooded.lane),
                       json.dumps({"v": 1, "id": scan_id, "code": MILK, "device": "SC1"}).encode())
    # Sent after every scan of the flood: first in line would be last to be served.
    state = quiet.scan(BREAD, timeout=60)
    assert len(state["lines"]) == 2
    flooded.state_for(flood_ids[-1], timeout=120)

    order = [cause for lane, cause in arrivals if lane == flooded.lane]
    assert order[-FLOOD:] == flood_ids  # the flooded lane's own events in the order sent, none lost
    quiet_at = next(i for i, (lane, cause) in enumerate(arrivals) if cause == state["cause"])
    after = sum(1 for lane, _ in arrivals[quiet_at:] if lane == flooded.lane)
    # The quiet lane's scan was served while most of the flood still waited, not after it.
    assert after >= FLOOD // 3, f"only {after} of the flood's {FLOOD} changes came after the quiet lane's"
    changes = [TicketChange.parse(p) for p in iter(lambda: None if flooded.changes.empty() else flooded.changes.get(), None)]
    seqs = [c.seq for c in changes]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    wait_until(lambda: flooded.view.state().seq == seqs[-1], 10, message="the flooded lane's view at its last change")
    assert len(flooded.view.state().lines) == FLOOD + 1
