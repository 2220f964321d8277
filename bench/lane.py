"""The lane benchmark (issue 3): scan → ticket state latency through the real
store broker, and lane customer search latency, over a full catalogue.

HQ is bulk-loaded (customers, products with barcodes, rates with lines,
specific prices, cards), a real edge takes its snapshot, and a load generator
on the store broker scans in an open loop at fixed rates (QoS 1, as in
production), spread over lanes that close their ticket every 20 scans. The
latency of a scan is from its publish to the arrival of the ticket
change (``ticket/change``) whose ``cause`` is the scan's id.

At every rate the echo floor and the durable floor (bench/floor.py) run the same
schedule just before the scans, and every figure comes with its ratio to theirs.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

from bench import topics as bench_topics
from bench.floor import Floors
from bench.schedule import Timed, ratios, scan_payload
from bench.sync import _reader, _snapshot_done, _wait, bulk_write, percentile
from lanehub.chain.demo_data import demo_customers
from lanehub.chain.local import Chain
from lanehub.domain.catalogue import barcode_key, product_key, rate_key, rate_line_key, specific_price_key
from lanehub.domain.codes import CodeFormat
from lanehub.protocol import topics
from lanehub.protocol.change import new_id
from lanehub.replication.sqlite import transaction
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

LINES_PER_TICKET = 20
RATES = 100


def bulk_load_shop(path: Path, customers: int, products: int, rate_lines: int, specifics: int) -> dict:
    """HQ's database with the benchmark's catalogue and customers. Returns counts and seconds."""
    from hq.db import HQDatabase

    started = time.monotonic()
    db = HQDatabase(path, CodeFormat())
    rng = random.Random(11)
    people = demo_customers(customers, seed=7)
    customer_ids = [new_id() for _ in range(customers)]
    product_ids = [product_key(f"P{i:07d}") for i in range(products)]
    with transaction(db.conn):
        bulk_write(db, "customer", ((customer_ids[i], next(people) | {
            "code": db.codes.format(i + 1), "created_by": "bench", "rate": f"R{i % RATES:03d}" if i % 10 == 0 else ""})
            for i in range(customers)))
        bulk_write(db, "product", ((product_ids[i], {
            "sku": f"P{i:07d}", "description": f"Product {i}", "brand": f"Brand {i % 500}", "size": "1u",
            "retail_price": f"{rng.randrange(50, 5000) / 100:.2f}", "tax_rate": "21.00"}) for i in range(products)))
        bulk_write(db, "barcode", ((barcode_key(_barcode(i)), {"code": _barcode(i), "product_id": product_ids[i]})
                                   for i in range(products)))
        bulk_write(db, "rate", ((rate_key(f"R{r:03d}"), {"code": f"R{r:03d}", "name": f"Rate {r}", "start": "2020-01-01"})
                                for r in range(RATES)))
        lines: set[tuple[int, int]] = set()  # (rate, product)
        while len(lines) < min(rate_lines, RATES * products):
            lines.add((rng.randrange(RATES), rng.randrange(products)))
        bulk_write(db, "rate_line", ((rate_line_key(rate_key(f"R{r:03d}"), product_ids[p]), {
            "rate_id": rate_key(f"R{r:03d}"), "product_id": product_ids[p], "price": "0.00", "discount_pct": "10.00"})
            for r, p in sorted(lines)))
        bulk_write(db, "specific_price", ((specific_price_key(product_ids[p], "", "", "", ""), {
            "product_id": product_ids[p], "price": "0.40"}) for p in rng.sample(range(products), min(specifics, products))))
        cards = min(customers, 10_000)
        bulk_write(db, "card", ((new_id(), {"number": f"CARD-{i:07d}", "customer_id": customer_ids[i], "kind": "customer"})
                                for i in range(cards)))
        db.replica.rebuild_fts()
        db.meta.set("next_code", customers + 1)
    db.close()
    return {"customers": customers, "products": products, "rate_lines": len(lines), "specific_prices": specifics,
            "cards": cards, "hq_bulk_load_s": round(time.monotonic() - started, 1)}


def start_shop(chain: Chain) -> float:
    """HQ, then store S001's edge, until its snapshot is done; returns the snapshot's seconds."""
    hq_service = chain.hq
    assert hq_service is not None  # register_stores made it
    hq_service.start()
    hq_service.wait_for_log("lanehub-hq: connected", 60)
    started = time.monotonic()
    chain.edges["S001"].start()
    path = chain.workdir / "S001.db"
    _wait(lambda: path.exists(), 60, 0.05)
    reader = _reader(path)
    _wait(lambda: _snapshot_done(reader), 900, 0.1)
    reader.close()
    return round(time.monotonic() - started, 1)


def _barcode(i: int) -> str:
    return f"84{i:011d}"


class LoadGenerator(Timed):
    """Scans on the store broker, timed from publish to the state they cause."""

    def __init__(self, port: int, store: str, lanes: int, products: int):
        super().__init__()
        self.store = store
        self.lanes = [f"B{i}" for i in range(1, lanes + 1)]
        self.products = products
        self.rng = random.Random(5)
        self.client = MqttClient(BrokerSettings(port=port), f"bench-lanes-{uuid.uuid4().hex[:6]}")
        self.client.start()
        if not self.client.wait_connected(10):
            raise RuntimeError("the load generator cannot reach the store broker")
        # Only the changes (one per event, D48): a subscription to bench/ would bring it the
        # floors' messages too.
        self.client.subscribe(topics.lane_filter(store, topics.LEAF_TICKET_CHANGE), self._on_change)
        self.scans_on = {lane: 0 for lane in self.lanes}
        time.sleep(0.5)

    def _on_change(self, msg) -> None:
        at = time.perf_counter()
        self.arrived(json.loads(msg.payload).get("cause"), at)

    def send(self, n: int) -> None:
        lane = self.lanes[n % len(self.lanes)]
        if self.scans_on[lane] == LINES_PER_TICKET:  # the cashier closes the ticket (not timed)
            close = {"v": 1, "id": str(uuid.uuid4()), "op": "close"}
            self.client.publish(topics.ticket_cmd(self.store, lane), json.dumps(close).encode())
            self.scans_on[lane] = 0
        scan_id = str(uuid.uuid4())
        payload = scan_payload(scan_id, _barcode(self.rng.randrange(self.products)))
        self.sending(scan_id)
        self.client.publish(topics.scan(self.store, lane), payload)
        self.scans_on[lane] += 1

    def stop(self) -> None:
        self.client.stop()


def _at_rate(generator: LoadGenerator, floors: Floors, rate: float, count: int) -> dict:
    """The echo floor, the durable floor, then the scans, back to back at one rate and
    count: whatever else the machine does meanwhile hits all three alike."""
    echo = floors.echo.open_loop(rate, count) | {"messages": count}
    durable = floors.durable.open_loop(rate, count) | {"messages": count}
    scans = generator.open_loop(rate, count)
    return {"rate": rate, "scans": count, **scans, "floor": echo, "durable_floor": durable,
            "ratio": {"floor": ratios(generator.latencies, floors.echo.latencies),
                      "durable_floor": ratios(generator.latencies, floors.durable.latencies)}}


def _saturation(generator: LoadGenerator, floors: Floors, count: int) -> dict:
    """The rate each sustains when ``count`` messages are sent at once, and the scans'
    over the floors' (below 1: the floor sustains more)."""
    per_s = {name: count / timed.flood(count) for name, timed in
             (("floor", floors.echo), ("durable_floor", floors.durable), ("lanehub", generator))}
    out: dict = {"scans": count, "seconds": round(count / per_s["lanehub"], 2), "scans_per_s": round(per_s["lanehub"])}
    for name in ("floor", "durable_floor"):
        out[name] = {"messages": count, "per_s": round(per_s[name])}
    out["ratio"] = {name: round(per_s["lanehub"] / per_s[name], 2) for name in ("floor", "durable_floor")}
    return out


def search_latency(port: int, store: str, customers_db: Path, samples: int) -> dict:
    """Lane customer search over the broker (request/reply), by kind of query."""
    reader = _reader(customers_db)
    rows = reader.execute("SELECT first_name, last_name, phone, code FROM customers WHERE rowid IN "
                          "(SELECT rowid FROM customers ORDER BY random() LIMIT ?)", (samples,)).fetchall()
    reader.close()
    queries = {
        "prefix2": [r[1][:2] for r in rows], "prefix3": [r[1][:3] for r in rows], "prefix5": [r[1][:5] for r in rows],
        "name": [f"{r[0]} {r[1]}" for r in rows], "phone": [r[2] or "+34 600" for r in rows], "code": [r[3] for r in rows],
    }
    client = MqttClient(BrokerSettings(port=port), f"bench-search-{uuid.uuid4().hex[:6]}")
    client.start()
    client.wait_connected(10)
    client.subscribe(bench_topics.REPLIES, lambda m: None)
    time.sleep(0.3)
    out = {}
    try:
        for kind, values in queries.items():
            timings = []
            for q in values:
                request = json.dumps({"v": 1, "op": "search", "q": q, "limit": 20}).encode()
                started = time.perf_counter()
                reply = json.loads(client.request(topics.customer_req(store, "S1"), request, bench_topics.SEARCH_REPLY, 10).payload)
                timings.append((time.perf_counter() - started) * 1000)
                if not reply.get("ok"):
                    raise RuntimeError(f"search {q!r} failed: {reply}")
            out[kind] = {"p50_ms": round(percentile(timings, 50), 2), "p99_ms": round(percentile(timings, 99), 2),
                         "max_ms": round(max(timings), 2)}
    finally:
        client.stop()
    return out


def bench_lane(workdir: Path, customers: int, products: int, rate_lines: int, specifics: int, rates: list[float],
               seconds: float, flood: int, search_samples: int, lanes: int = 10) -> dict:
    chain = Chain(workdir / "lane", ("S001",), log_level="INFO")
    try:
        chain.start_brokers()
        chain.register_stores()
        loaded = bulk_load_shop(chain.workdir / "hq.db", customers, products, rate_lines, specifics)
        results: dict = {"loaded": loaded | {"snapshot_s": start_shop(chain)}}
        path = chain.workdir / "S001.db"
        port = chain.store_brokers["S001"].port
        generator = LoadGenerator(port, "S001", lanes, products)
        # Beside the edge's database: the durable floor's fsync is on the same disk.
        floors = Floors(port, path.parent, _barcode(0))
        try:
            # Warm-up: the edge's caches and first tickets; the floors have none, only their file and paths.
            floors.echo.open_loop(50, 50)
            floors.durable.open_loop(50, 50)
            generator.open_loop(50, 200)
            results["scan"] = [_at_rate(generator, floors, rate, max(100, int(rate * seconds))) for rate in rates]
            results["saturation"] = _saturation(generator, floors, flood)
        finally:
            floors.stop()
            generator.stop()
        results["search"] = search_latency(port, "S001", path, search_samples)
        return results
    finally:
        chain.stop()


FIGURE_NAMES = {"p50": "p50", "p99": "p99", "p999": "p99.9", "max": "max"}


def report(results: dict) -> list[str]:
    """The scan and saturation figures as lines for a person, each beside its floors."""
    lines = ["scan (each figure, then its ratio to the echo floor and to the durable floor measured "
             "just before it at the same rate and count):"]
    for run in results["scan"]:
        lines.append(f"  {run['rate']:g}/s, {run['scans']} scans ({run['achieved_per_s']:g}/s achieved)")
        for key, name in FIGURE_NAMES.items():
            floor, durable = run["ratio"]["floor"][key], run["ratio"]["durable_floor"][key]
            lines.append(f"    {name:<5} {run[f'{key}_ms']:7.2f} ms  ({floor:g}x floor {run['floor'][f'{key}_ms']:.2f}, "
                         f"{durable:g}x durable {run['durable_floor'][f'{key}_ms']:.2f})")
    sat = results["saturation"]
    lines.append(f"saturation: {sat['scans_per_s']} scans/s ({sat['ratio']['floor']:g}x floor {sat['floor']['per_s']}/s, "
                 f"{sat['ratio']['durable_floor']:g}x durable {sat['durable_floor']['per_s']}/s), "
                 f"{sat['scans']} scans in {sat['seconds']:g} s")
    return lines
