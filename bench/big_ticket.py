"""The big-ticket benchmark (issue 17 part 2): does an event cost the same on the
1st line of a ticket as on the 500th, and does a lane flooding one ticket delay
another lane?

A real HQ and edge over a small catalogue (the size of the catalogue is not what
this measures). Two parts, through the real store broker:

- **growth**: on fresh lanes, ``lines`` scans one after the other (closed loop:
  each scan is sent when the previous one's answer arrived) into one ticket,
  ``rounds`` times; the latency at the 500th and last line is the median of the
  ten scans ending there, over all rounds, and at the 1st the median of the first
  ten (one scan a round is too few to be a figure);
- **flood**, once per flood rate: a quiet lane scans at ``quiet_rate`` (closing
  its ticket every 20 scans, as a cashier does) for ``quiet_seconds``; then
  another lane, from a process of its own, publishes ``flood`` scans into one
  ticket at the flood rate (0: as fast as it can) while the quiet lane goes on
  at the same rate until the flood is answered (at most ``flood_timeout`` s). The
  edge allows the most lines a store may (``MAX_TICKET_LINES``): past them the
  flood's scans are refused as ``ticket_full``, each still a whole event.
  The quiet lane's p99 during the flood over its p99 alone is the figure. A
  flood sent faster than the edge's network thread reads it queues in the broker,
  ahead of the quiet lane's scans on the edge's one connection: no scheduling in
  the edge can help those (docs/benchmarks.md, "Big tickets").

A scan's answer is the first message on the lane's ``ticket/change`` or
``ticket/state`` whose ``cause`` is the scan's id; a scan still unanswered
``ANSWER_WITHIN`` s after the end counts as that late (a floor, not a figure).
"""

from __future__ import annotations

import multiprocessing
import re
import statistics
import threading
import time
import uuid
from pathlib import Path

from bench.lane import _barcode, bulk_load_shop, start_shop
from bench.schedule import scan_payload
from bench.sync import percentile
from lanehub.chain.local import Chain
from lanehub.protocol import topics
from lanehub.protocol.lane import MAX_TICKET_LINES
from lanehub.runtime.mqtt import BrokerSettings, Incoming, MqttClient

ANSWER_WITHIN = 10.0  # s: an unanswered scan counts as this late
WINDOW = 10  # scans whose median is "the latency at line k"
QUIET_CLOSE_EVERY = 20
CAUSE_RE = re.compile(rb'"cause":\s*"([^"]*)"')


def _cause(payload: bytes) -> str | None:
    # The cause is the last field of a state or change: found without parsing a
    # (possibly megabyte) payload, so the probe's own cost does not grow with it.
    found = CAUSE_RE.search(payload, max(0, len(payload) - 400))
    return found.group(1).decode() if found else None


class Probe:
    """Scans on lanes of one store, each timed from its publish to its answer. The
    flooding lane and the quiet one each have their own (as two POS terminals would):
    on one connection the quiet lane's scans would queue behind the flood's publishes
    in the client, and its answers behind the flood's in the broker."""

    def __init__(self, port: int, store: str, lanes: tuple[str, ...] = ()):
        self.port = port
        self.store = store
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.answered: dict[str, float] = {}  # scan id -> latency in ms
        self.waiting: dict[str, threading.Event] = {}
        self.client = MqttClient(BrokerSettings(port=port), f"bench-big-{uuid.uuid4().hex[:6]}")
        self.client.start()
        if not self.client.wait_connected(10):
            raise RuntimeError("the benchmark cannot reach the store broker")
        # The change answers each scan (D48); the state too, as it did before it.
        for build, leaf in ((topics.ticket_change, topics.LEAF_TICKET_CHANGE), (topics.ticket_state, topics.LEAF_TICKET_STATE)):
            for topic in [build(store, lane) for lane in lanes] or [topics.lane_filter(store, leaf)]:
                self.client.subscribe(topic, self._on_answer)
        time.sleep(0.5)  # the SUBACKs: the first answers must not be missed

    def _on_answer(self, msg: Incoming) -> None:
        at = time.perf_counter()
        cause = _cause(msg.payload)
        with self.lock:
            sent = self.sent.pop(cause, None) if cause else None
            if sent is None:
                return
            self.answered[cause] = (at - sent) * 1000  # type: ignore[index]  # cause is set when sent is
            event = self.waiting.pop(cause, None)  # type: ignore[arg-type]
        if event:
            event.set()

    def scan(self, lane: str, code: str, wait: bool = False) -> str:
        scan_id = str(uuid.uuid4())
        event = threading.Event() if wait else None
        with self.lock:
            self.sent[scan_id] = time.perf_counter()
            if event:
                self.waiting[scan_id] = event
        self.client.publish(topics.scan(self.store, lane), scan_payload(scan_id, code))
        if event and not event.wait(ANSWER_WITHIN):
            raise RuntimeError(f"scan on lane {lane} not answered within {ANSWER_WITHIN:g} s")
        return scan_id

    def expect(self, ids: list[str]) -> None:
        """Scans another client sends (the flood): their latencies count from now."""
        now = time.perf_counter()
        with self.lock:
            self.sent.update(dict.fromkeys(ids, now))

    def close(self, lane: str) -> None:
        self.client.publish(topics.ticket_cmd(self.store, lane),
                            f'{{"v": 1, "id": "{uuid.uuid4()}", "op": "close"}}'.encode())

    def latencies(self, ids: list[str]) -> list[float]:
        """Each scan's latency; one not answered counts as ANSWER_WITHIN."""
        with self.lock:
            return [self.answered.get(i, ANSWER_WITHIN * 1000) for i in ids]

    def unanswered(self, ids: list[str]) -> int:
        with self.lock:
            return sum(1 for i in ids if i not in self.answered)

    def stop(self) -> None:
        self.client.stop()


def growth(probe: Probe, lines: int, rounds: int, products: int) -> dict:
    """Closed-loop scans into one ticket per round; medians at the 1st, 500th and last line."""
    by_position: list[list[float]] = [[] for _ in range(lines)]
    for r in range(rounds):
        lane = f"G{r + 1}"
        ids = [probe.scan(lane, _barcode(n % products), wait=True) for n in range(lines)]
        for n, latency in enumerate(probe.latencies(ids)):
            by_position[n].append(latency)
        probe.close(lane)

    def at(line: int) -> float:
        start = max(0, line - WINDOW)
        return statistics.median(x for pos in by_position[start:max(line, WINDOW)] for x in pos)

    marks = sorted({1, min(500, lines), lines})
    out: dict = {"lines": lines, "rounds": rounds, "window": WINDOW,
                 "median_ms": {str(m): round(at(m), 3) for m in marks}}
    first = at(1)
    out["ratio_to_first"] = {str(m): round(at(m) / first, 2) for m in marks if m != 1}
    return out


def _open_loop(probe: Probe, lane: str, rate: float, products: int, until) -> list[str]:
    """Scans on ``lane`` at ``rate`` per second until ``until()`` (a fixed schedule)."""
    ids: list[str] = []
    start = time.perf_counter()
    n = 0
    while not until():
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if n and n % QUIET_CLOSE_EVERY == 0:
            probe.close(lane)
        ids.append(probe.scan(lane, _barcode((n * 7919) % products)))
        n += 1
    return ids


def _flood_id(run: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{run}-{n}"))


def send_flood(port: int, store: str, lane: str, run: str, scans: int, rate: float, products: int) -> None:
    """The flooding terminal: ``scans`` scans on ``lane`` at ``rate`` a second (0: as fast
    as it can publish them)."""
    client = MqttClient(BrokerSettings(port=port), f"bench-flood-{run[:6]}")
    client.start()
    if not client.wait_connected(10):
        raise RuntimeError("the flooding lane cannot reach the store broker")
    topic = topics.scan(store, lane)
    start = time.perf_counter()
    for n in range(scans - 1):
        if rate and (delay := start + n / rate - time.perf_counter()) > 0:
            time.sleep(delay)
        client.publish(topic, scan_payload(_flood_id(run, n), _barcode(n % products)))
    # Sent in order: once the broker has the last, it has them all.
    client.publish_acked(topic, scan_payload(_flood_id(run, scans - 1), _barcode((scans - 1) % products)), timeout=120)
    client.stop()


def _figures(probe: Probe, ids: list[str]) -> dict:
    values = probe.latencies(ids)
    return {"scans": len(ids), "unanswered": probe.unanswered(ids), "p50_ms": round(percentile(values, 50), 2),
            "p99_ms": round(percentile(values, 99), 2), "max_ms": round(max(values), 2)}


def flood(port: int, store: str, scans: int, flood_rate: float, quiet_rate: float, quiet_seconds: float,
          flood_timeout: float, products: int, run: int = 1) -> dict:
    """The quiet lane alone, then beside a lane flooding one ticket with ``scans`` scans."""
    quiet_lane, flood_lane = f"Q{run}", f"F{run}"
    probe, flooding = Probe(port, store, (quiet_lane,)), Probe(port, store, (flood_lane,))
    try:
        return _flood(probe, flooding, quiet_lane, flood_lane, scans, flood_rate, quiet_rate, quiet_seconds,
                      flood_timeout, products)
    finally:
        flooding.stop()
        probe.stop()


def _flood(probe: Probe, flooding: Probe, quiet_lane: str, flood_lane: str, scans: int, flood_rate: float,
           quiet_rate: float, quiet_seconds: float, flood_timeout: float, products: int) -> dict:
    end = time.monotonic() + quiet_seconds
    alone = _open_loop(probe, quiet_lane, quiet_rate, products, lambda: time.monotonic() >= end)
    time.sleep(1.0)  # the last answers of the quiet run, before the flood starts

    # The flood comes from a process of its own, as from another terminal: sent from this
    # one, it would hold this process's interpreter and delay the quiet lane's own sends.
    run = uuid.uuid4().hex
    flood_ids = [_flood_id(run, n) for n in range(scans)]  # known here: the sender is another process
    flooding.expect(flood_ids)
    started = time.monotonic()
    sender = multiprocessing.get_context("spawn").Process(
        target=send_flood, args=(flooding.port, flooding.store, flood_lane, run, scans, flood_rate, products), daemon=True)
    sender.start()

    def flood_over() -> bool:
        return time.monotonic() - started > flood_timeout or flooding.unanswered(flood_ids) == 0

    beside = _open_loop(probe, quiet_lane, quiet_rate, products, flood_over)
    sender.join(10)
    if sender.is_alive():
        sender.kill()
    flood_seconds = time.monotonic() - started
    answered = len(flood_ids) - flooding.unanswered(flood_ids)
    time.sleep(min(ANSWER_WITHIN, 2.0))  # the quiet lane's last scans' answers
    out = {"quiet_rate": quiet_rate, "alone": _figures(probe, alone), "beside_flood": _figures(probe, beside),
           "flood": {"scans": scans, "rate": flood_rate, "answered": answered, "seconds": round(flood_seconds, 1),
                     "answered_per_s": round(answered / flood_seconds, 1), "timed_out": answered < scans}}
    alone_p99 = percentile(probe.latencies(alone), 99)
    out["ratio_p99"] = round(percentile(probe.latencies(beside), 99) / alone_p99, 2)
    return out


def bench_big_ticket(workdir: Path, lines: int, rounds: int, flood_scans: int, flood_rates: list[float],
                     quiet_rate: float, quiet_seconds: float, flood_timeout: float, customers: int, products: int,
                     store_settings: dict | None = None) -> dict:
    # The most lines a store may allow: the flood fills its ticket to that, and every scan
    # after is refused (ticket_full) after the same lookup and pricing as a line.
    settings = {"max_ticket_lines": MAX_TICKET_LINES} | (store_settings or {})
    chain = Chain(workdir / "big-ticket", ("S001",), log_level="INFO", store_settings={"S001": settings})
    try:
        chain.start_brokers()
        chain.register_stores()
        loaded = bulk_load_shop(chain.workdir / "hq.db", customers, products, min(1000, products), min(100, products))
        start_shop(chain)
        probe = Probe(chain.store_brokers["S001"].port, "S001")
        try:
            for n in range(50):  # warm-up: the edge's caches, a first ticket
                probe.scan("W1", _barcode(n % products), wait=True)
            results: dict = {"loaded": loaded, "growth": growth(probe, lines, rounds, products)}
        finally:
            probe.stop()
        # A fresh pair of lanes per rate: each flood fills a ticket of its own.
        results["flood"] = [flood(chain.store_brokers["S001"].port, "S001", flood_scans, rate, quiet_rate, quiet_seconds,
                                  flood_timeout, products, n) for n, rate in enumerate(flood_rates, 1)]
        return results
    finally:
        chain.stop()


def report(results: dict) -> list[str]:
    g = results["growth"]
    lines = [f"growth: {g['lines']} scans into one ticket, {g['rounds']} rounds (median of the {g['window']} scans "
             f"ending at each line):"]
    for mark, ms in g["median_ms"].items():
        ratio = g["ratio_to_first"].get(mark)
        lines.append(f"  line {mark:>5}: {ms:8.2f} ms" + (f"  ({ratio:g}x line 1)" if ratio is not None else ""))
    for f in results["flood"]:
        alone, beside, flooded = f["alone"], f["beside_flood"], f["flood"]
        pace = f"at {flooded['rate']:g}/s" if flooded["rate"] else "as fast as it can"
        lines.append(f"flood: a lane sends {flooded['scans']} scans into one ticket {pace}; a quiet lane scans at "
                     f"{f['quiet_rate']:g}/s")
        lines.append(f"  quiet lane alone:        p50 {alone['p50_ms']:.2f} ms  p99 {alone['p99_ms']:.2f} ms  "
                     f"({alone['scans']} scans)")
        lines.append(f"  quiet lane beside flood: p50 {beside['p50_ms']:.2f} ms  p99 {beside['p99_ms']:.2f} ms  "
                     f"({beside['scans']} scans, {beside['unanswered']} unanswered)  -> p99 {f['ratio_p99']:g}x alone")
        lines.append(f"  flooding lane: {flooded['answered']} of {flooded['scans']} answered in {flooded['seconds']:g} s "
                     f"({flooded['answered_per_s']:g}/s){' (timed out)' if flooded['timed_out'] else ''}")
    return lines
