"""Hybrid logical clock (Kulkarni et al.): wall-clock time plus a counter.

A stamp is ``"<13-digit ms>-<6-digit counter>"`` so that stamps sort as
strings. Ties between equal stamps from different sites are broken by the
change's origin (see ``lanehub.protocol.change.Stamp``), never here.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

STAMP_RE = re.compile(r"^\d{13}-\d{6}$")
ZERO = "0000000000000-000000"


def format_stamp(ms: int, counter: int) -> str:
    return f"{ms:013d}-{counter:06d}"


def parse_stamp(stamp: str) -> tuple[int, int]:
    if not isinstance(stamp, str) or not STAMP_RE.match(stamp):
        raise ValueError(f"not an HLC stamp: {stamp!r}")
    ms, counter = stamp.split("-")
    return int(ms), int(counter)


def stamp_ms(stamp: str) -> int:
    return parse_stamp(stamp)[0]


class HybridLogicalClock:
    """Thread-safe HLC. ``now()`` for local events, ``observe()`` for remote ones."""

    def __init__(self, wall_ms: Callable[[], int] | None = None, last: str = ZERO):
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._lock = threading.Lock()
        self._ms, self._counter = parse_stamp(last)

    def now(self) -> str:
        with self._lock:
            wall = self._wall_ms()
            if wall > self._ms:
                self._ms, self._counter = wall, 0
            else:
                self._counter += 1
                if self._counter > 999_999:  # the stamp's width: move to the next millisecond
                    self._ms, self._counter = self._ms + 1, 0
            return format_stamp(self._ms, self._counter)

    def observe(self, remote: str) -> None:
        """Move past a stamp seen from another site, so later local stamps sort after it."""
        r_ms, r_counter = parse_stamp(remote)
        with self._lock:
            if (r_ms, r_counter) > (self._ms, self._counter):
                self._ms, self._counter = r_ms, r_counter

    @property
    def last(self) -> str:
        with self._lock:
            return format_stamp(self._ms, self._counter)


_site_clocks: dict[str, HybridLogicalClock] = {}
_site_clocks_lock = threading.Lock()


def site_clock(database: str | os.PathLike[str], last: str = ZERO) -> HybridLogicalClock:
    """The one clock of the site whose database this is, shared by every worker
    and connection of this process. Each worker with its own clock would stamp
    without having seen what another applied (a store's lane worker stamping an
    edit behind the HQ edit its sync worker just applied, and losing to it).
    ``last`` is the site's persisted stamp: the clock never goes back to below it."""
    key = os.path.realpath(database)
    with _site_clocks_lock:
        clock = _site_clocks.get(key)
        if clock is None:
            clock = _site_clocks[key] = HybridLogicalClock(last=last)
    clock.observe(last)
    return clock


def now_iso() -> str:
    """Wall-clock time as records keep it (``updated_at``...): UTC, to the second. Never
    an ordering: the order of changes is their stamps'."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
