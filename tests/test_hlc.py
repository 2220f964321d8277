"""The hybrid logical clock: monotonic, sortable as strings, moved by remote stamps."""

from __future__ import annotations

import pytest

from lanehub.protocol.hlc import HybridLogicalClock, format_stamp, parse_stamp


def test_stamps_increase_even_when_the_wall_clock_stands_still():
    clock = HybridLogicalClock(wall_ms=lambda: 1_700_000_000_000)
    stamps = [clock.now() for _ in range(5)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 5


def test_stamps_increase_when_the_wall_clock_goes_back():
    wall = [1_700_000_000_500]
    clock = HybridLogicalClock(wall_ms=lambda: wall[0])
    first = clock.now()
    wall[0] -= 400
    assert clock.now() > first


def test_observing_a_remote_stamp_moves_local_stamps_past_it():
    clock = HybridLogicalClock(wall_ms=lambda: 1_000)
    remote = format_stamp(5_000, 7)
    clock.observe(remote)
    assert clock.now() > remote


def test_string_order_is_time_order():
    assert format_stamp(999, 99) < format_stamp(1000, 0)
    assert format_stamp(1000, 1) < format_stamp(1000, 2)


def test_restart_resumes_after_the_last_stamp():
    clock = HybridLogicalClock(wall_ms=lambda: 10, last=format_stamp(20, 3))
    assert clock.now() > format_stamp(20, 3)


@pytest.mark.parametrize("bad", ["", "123", "0000000000001-1", "abc-def", None])
def test_malformed_stamps_are_refused(bad):
    with pytest.raises(ValueError):
        parse_stamp(bad)


def test_counter_overflow_moves_to_the_next_millisecond_and_keeps_the_stamp_width():
    clock = HybridLogicalClock(wall_ms=lambda: 1_000, last=format_stamp(1_000, 999_999))
    stamp = clock.now()
    assert stamp == format_stamp(1_001, 0)
    parse_stamp(stamp)
