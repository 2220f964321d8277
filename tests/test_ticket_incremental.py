"""Constant work per event (issue 17 part 2, decisions D48): each lane event
publishes what it changed (``ticket/change``) instead of the whole ticket, the
whole ticket stays retained on ``ticket/state``, and a lane client that follows
the changes holds exactly the ticket the edge holds. Real broker, real edge,
real SQLite; the shop of tests/shop.py."""

from __future__ import annotations

import json
import uuid
from decimal import ROUND_HALF_UP, Decimal

from helpers import db_query, edge_db, wait_until

from lanehub.protocol import topics
from lanehub.protocol.lane import TicketChange, TicketLine, TicketState
from lanehub.protocol.ticket_view import TicketView

SHOP_STORE_SETTINGS = {"S001": {"max_ticket_lines": 600}}
MILK, BREAD = "8410000000011", "2000000000015"


def _changes(lane) -> list[bytes]:
    out = []
    while not lane.changes.empty():
        out.append(lane.changes.get_nowait())
    return out


def _flood(lane, code: str, count: int) -> list[str]:
    """``count`` scans sent at once; their ids, in order."""
    ids = []
    for _ in range(count):
        scan_id = str(uuid.uuid4())
        ids.append(scan_id)
        lane.client.publish(topics.scan(lane.store, lane.lane),
                            json.dumps({"v": 1, "id": scan_id, "code": code, "device": "SC1"}).encode())
    return ids


def _retained_state(lane, seq: int) -> TicketState:
    """The whole state the edge retains, once it includes event ``seq``."""
    seen: list[TicketState] = []
    stop = lane.client.subscribe(topics.ticket_state(lane.store, lane.lane),
                                 lambda m: seen.append(TicketState.parse(m.payload)))
    try:
        return wait_until(lambda: next((s for s in reversed(seen) if s.seq >= seq), None), 10, 0.05,
                          f"the retained state of lane {lane.lane} at seq {seq}")
    finally:
        stop()


def _recomputed(shop, ticket: str) -> tuple[list[TicketLine], str]:
    """The ticket's lines and subtotal from its rows, summed from scratch."""
    rows = db_query(edge_db(shop, "S001"), "SELECT * FROM ticket_lines WHERE ticket = ? AND removed = 0 ORDER BY line",
                    (ticket,))
    lines = [TicketLine.from_dict(dict(row)) for row in rows]
    return lines, str(sum((Decimal(line.amount) for line in lines), Decimal(0)).quantize(Decimal("0.01")))


def test_a_scan_s_change_is_as_small_on_line_500_as_on_line_1(lane):
    first = lane.scan(MILK)
    ids = _flood(lane, MILK, 499)
    lane.state_for(ids[-1], timeout=60)
    changes = [TicketChange.parse(p) for p in _changes(lane)]
    sizes = {c.line_count: len(c.to_json()) for c in changes}
    line_1, line_500 = changes[0], changes[-1]
    assert (line_1.line_count, line_500.line_count) == (1, 500) and line_500.cause == ids[-1]
    # Each carries its own line only: the 500th does not repeat the 499 before it.
    assert [line.line for line in line_500.lines] == [500] and [line.line for line in line_1.lines] == [1]
    # The same fields, a few digits longer (line 500, seq, a subtotal of 600.00): not 499 lines longer.
    assert sizes[500] <= sizes[1] + 40, sizes
    assert line_500.subtotal == line_500.total == "600.00"
    assert [c.seq for c in changes] == list(range(line_1.seq, line_1.seq + 500))
    # The lane client that followed them holds the whole ticket, as does the retained state.
    held = lane.view.state()
    assert held.ticket == first["ticket"] and len(held.lines) == 500
    retained = _retained_state(lane, line_500.seq)
    assert retained.lines == held.lines and retained.total == held.total == "600.00"


def test_a_customer_reprices_the_lines_that_change_and_only_those(shop, lane):
    lane.scan(MILK)
    lane.cmd("add", sku="WINE", qty=2)
    lane.scan(BREAD)
    _changes(lane)
    state = lane.card("CARD-0001")  # Ann, rate VIP: milk -10 %; wine's rate line (12.00) is dearer than retail
    change = TicketChange.parse(_changes(lane)[-1])
    assert [(line.line, line.sku, line.unit_price, line.price_source) for line in change.lines] == [
        (1, "MILK", "1.08", "rate:VIP")]
    assert change.line_count == 3 and change.customer is not None and change.customer.name == "Ann Shopper"
    assert [(l["sku"], l["unit_price"], l["amount"]) for l in state["lines"]] == [
        ("MILK", "1.08", "1.08"), ("WINE", "9.99", "19.98"), ("BREAD", "0.95", "0.95")]
    assert state["subtotal"] == state["total"] == "22.01"
    state = lane.cmd("clear_customer")
    change = TicketChange.parse(_changes(lane)[-1])
    assert [(line.sku, line.unit_price, line.price_source) for line in change.lines] == [("MILK", "1.20", "retail")]
    assert state["customer"] is None and state["total"] == "22.13"
    lines, subtotal = _recomputed(shop, state["ticket"])
    assert [line.to_dict() for line in lines] == state["lines"] and subtotal == state["subtotal"]


def test_totals_after_scans_quantities_removals_customers_and_refusals_equal_a_recompute(shop, lane):
    lane.scan(MILK)
    lane.cmd("add", sku="WINE", qty=3)
    lane.cmd("add", sku="MILK", qty="1.5")
    lane.scan(BREAD)
    lane.cmd("remove", line=2)
    lane.cmd("remove", line=2)  # refused: already removed
    lane.cmd("add", sku="NOPE")  # refused: unknown
    lane.card("CARD-0001")
    lane.cmd("add", sku="MILK", qty="2.255")
    lane.cmd("remove", line=1)
    lane.scan(BREAD)
    state = lane.cmd("clear_customer")
    lines, subtotal = _recomputed(shop, state["ticket"])
    assert [line.to_dict() for line in lines] == state["lines"]
    assert [line["line"] for line in state["lines"]] == [3, 4, 5, 6]
    assert subtotal == state["subtotal"] == state["total"]
    for line in lines:
        assert Decimal(line.amount) == (Decimal(line.unit_price) * Decimal(line.qty)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    retained = _retained_state(lane, lane.view.seq)
    assert [line.to_dict() for line in retained.lines] == state["lines"] and retained.subtotal == subtotal
    # A new ticket after a void starts from nothing, in the changes too.
    lane.cmd("void")
    state = lane.scan(MILK)
    assert [line["line"] for line in state["lines"]] == [1] and state["total"] == "1.20"
    assert TicketChange.parse(_changes(lane)[-1]).line_count == 1


def test_a_refused_event_changes_nothing_but_its_warning_and_seq(lane):
    lane.scan(MILK)
    before = lane.view.state()
    state = lane.cmd("remove", line=9)
    change = TicketChange.parse(_changes(lane)[-1])
    assert [w["code"] for w in state["warnings"]] == ["unknown_line"]
    assert change.lines == () and change.removed == () and change.line_count == 1 and change.seq == before.seq + 1
    assert state["lines"] == [line.to_dict() for line in before.lines] and state["total"] == before.total


# --- the lane client's side (lanehub.protocol.ticket_view), no broker ---

def _line(n: int, amount: str = "1.00") -> TicketLine:
    return TicketLine(line=n, sku=f"S{n}", qty="1", unit_price=amount, amount=amount)


def _change(seq: int, ticket: str, lines=(), removed=(), count: int = 0) -> TicketChange:
    return TicketChange(seq=seq, ticket=ticket, store="S001", lane="L1", status="open", lines=tuple(lines),
                        removed=tuple(removed), line_count=count, cause=f"e{seq}")


def test_a_view_applies_changes_in_order_and_waits_for_a_state_after_a_gap():
    view = TicketView()
    view.full(TicketState(ticket="T1", store="S001", lane="L1", status="open", lines=(_line(1),), seq=7))
    assert view.change(_change(8, "T1", [_line(2)], count=2))
    assert view.change(_change(9, "T1", [_line(2, "3.00")], removed=[1], count=1))
    assert [(line.line, line.amount) for line in view.state().lines] == [(2, "3.00")] and view.state().seq == 9
    assert not view.change(_change(11, "T1", [_line(3)], count=2)) and view.behind  # 10 never came
    assert not view.change(_change(12, "T1", [_line(4)], count=3))  # still behind: not guessed
    assert view.state().seq == 9
    view.full(TicketState(ticket="T1", store="S001", lane="L1", status="open", lines=(_line(2), _line(3), _line(4)), seq=12))
    assert not view.behind and view.change(_change(13, "T1", count=3))


def test_a_view_that_missed_changes_is_in_step_at_the_next_ticket():
    view = TicketView()
    assert not view.change(_change(5, "T1", [_line(3)], count=3))  # mid-ticket: the lines before are unknown
    assert view.state() is None
    assert view.change(_change(9, "T2", [_line(1)], count=1))  # a new ticket starts empty: all of it is here
    assert view.state().ticket == "T2" and [line.line for line in view.state().lines] == [1]
    assert view.change(_change(10, "T2", [_line(2)], count=2))


def test_a_change_s_seq_and_cause_are_read_without_decoding_it_and_anything_else_is_refused():
    from lanehub.protocol.lane import TicketChange, peek_change

    change = TicketChange(seq=41, store="S001", lane="L1", cause='scan "7"')
    assert peek_change(change.to_json()) == (41, 'scan "7"')
    assert peek_change(b'{"v":1,"cause":"x"}') is None
    assert peek_change(b"not json") is None
