"""The lane benchmark's yardstick: an open-loop schedule, timed from each publish to
the arrival of what it caused, and the figures made of it.

The scans (bench/lane.py) and their floors (bench/floor.py) share this code, the
payload included, so a scan's figure and its floor's differ only in what answers.
"""

from __future__ import annotations

import json
import threading
import time

from bench.sync import _wait, percentile

FIGURES = (("p50", 50.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0))


def scan_payload(scan_id: str, code: str) -> bytes:
    """A scan as a lane's scanner bridge sends it (the floors echo the same bytes)."""
    return json.dumps({"v": 1, "id": scan_id, "ts": time.time(), "device": "bench", "code": code,
                       "symbology": "E13"}).encode()


class Timed:
    """Sends ``count`` messages (``send(n)``, which calls ``sending`` just before its
    publish) and collects their latencies as their answers arrive (``arrived``)."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []  # ms, of the last run
        self.lock = threading.Lock()

    def send(self, n: int) -> None:
        raise NotImplementedError

    def sending(self, key: str) -> None:
        with self.lock:
            self.sent[key] = time.perf_counter()

    def arrived(self, key: str | None, at: float) -> None:
        """``at``: ``time.perf_counter()`` taken first thing in the handler, before parsing."""
        with self.lock:
            sent = self.sent.pop(key, None) if key is not None else None
            if sent is not None:
                self.latencies.append((at - sent) * 1000)

    def open_loop(self, rate: float, count: int) -> dict:
        """``count`` messages at ``rate`` per second on a fixed schedule: a late answer
        does not delay the next send (a closed loop would hide queueing)."""
        with self.lock:
            self.latencies = []
        start = time.perf_counter()
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.send(n)
        _wait(lambda: len(self.latencies) >= count, 60, 0.01)
        return figures(self.latencies, time.perf_counter() - start)

    def flood(self, count: int) -> float:
        """``count`` messages as fast as they can be sent; seconds until the last answer."""
        with self.lock:
            self.latencies = []
        start = time.perf_counter()
        for n in range(count):
            self.send(n)
        _wait(lambda: len(self.latencies) >= count, 300, 0.01)
        return time.perf_counter() - start


def figures(latencies: list[float], elapsed: float) -> dict:
    out: dict = {"achieved_per_s": round(len(latencies) / elapsed, 1)}
    out |= {f"{name}_ms": round(percentile(latencies, p), 2) for name, p in FIGURES}
    return out


def ratios(ours: list[float], floor: list[float]) -> dict:
    """Each figure of ``ours`` over the same figure of ``floor`` (from the unrounded
    latencies: a floor of 0.3 ms rounded to 0.01 would move the ratio by up to 2 %)."""
    return {name: round(percentile(ours, p) / percentile(floor, p), 2) for name, p in FIGURES}
