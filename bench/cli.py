"""`lanehub bench ...`: benchmarks (not tests); figures go to docs/benchmarks.md."""

from __future__ import annotations

import json
import platform
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import click


@click.group()
def bench():
    """Measure sync speed on this machine."""


def _machine() -> dict:
    try:
        mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        mosquitto = "not found"
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "mosquitto": mosquitto, "cpus": _cpus(), "platform": platform.platform()}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


@bench.command("sync")
@click.option("--customers", default=100_000, show_default=True, help="Customers in the snapshot benchmark.")
@click.option("--big", is_flag=True, help="Use 1,000,000 customers for the snapshot (the DESIGN target).")
@click.option("--huge", is_flag=True, help="Use 3,000,000 customers for the snapshot.")
@click.option("--stores", default=10, show_default=True, help="Stores for the latency benchmark.")
@click.option("--samples", default=200, show_default=True, help="Changes timed per latency figure.")
@click.option("--catchup", "catchup_changes", default=10_000, show_default=True,
              help="Changes a store catches up on (1000000: a week of a busy chain).")
@click.option("--catchup-customers", default=1000, show_default=True, help="Customers at HQ in the catch-up part.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the generated HQ databases (hq-N.db) here and reuse them in later runs.")
@click.option("--away", "aways", type=float, multiple=True, help="Seconds the HQ broker is away in the reconnect part "
              "(repeatable; default 8, 9, 10 and 11).")
@click.option("--only", type=click.Choice(["snapshot", "latency", "catchup", "reconnect"]), multiple=True,
              help="Run only these parts (repeatable).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep brokers' and databases' files here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def sync(customers: int, big: bool, huge: bool, stores: int, samples: int, catchup_changes: int,
         catchup_customers: int, data: Path | None, aways: tuple[float, ...], only: tuple[str, ...],
         workdir: Path | None, as_json: bool) -> None:
    """Snapshot and catch-up (with the edge's peak RSS), HQ→store and store→store latency, and convergence
    after the HQ broker returns, on real brokers and processes."""
    from bench import scale
    from bench import sync as runs

    if big:
        customers = 1_000_000
    if huge:
        customers = 3_000_000
    if stores < 2:
        raise click.BadParameter("at least 2 stores (store→store needs two)", param_hint="--stores")
    parts = set(only) or {"snapshot", "latency", "catchup", "reconnect"}
    results: dict = {"machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="lanehub-bench-") as tmp:
        base = workdir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        if "snapshot" in parts:
            click.echo(f"snapshot of {customers} customers…", err=True)
            results["snapshot"] = scale.bench_snapshot(base, customers, data)
        if "latency" in parts:
            click.echo(f"latency over {stores} stores, {samples} samples…", err=True)
            results["latency"] = runs.bench_latency(base, stores, samples)
        if "catchup" in parts:
            click.echo(f"catch-up of {catchup_changes} changes over {catchup_customers} customers…", err=True)
            results["catchup"] = scale.bench_catchup(base, catchup_changes, catchup_customers, data)
        if "reconnect" in parts:
            aways = aways or (8.0, 9.0, 10.0, 11.0)
            click.echo(f"the HQ broker away {', '.join(f'{a:g}' for a in aways)} s, a customer created at each of "
                       "two stores meanwhile…", err=True)
            results["reconnect"] = runs.bench_reconnect(base, aways)
    _print(results, as_json)


def _print(results: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for name, figures in results.items():
        click.echo(f"{name}:")
        for item in figures if isinstance(figures, list) else [figures]:
            for key, value in item.items():
                click.echo(f"  {key}: {value}")


@bench.command("lane")
@click.option("--customers", default=1_000_000, show_default=True)
@click.option("--products", default=100_000, show_default=True)
@click.option("--rate-lines", default=10_000, show_default=True)
@click.option("--specific-prices", default=1_000, show_default=True)
@click.option("--rates", default="5,200,1000", show_default=True, help="Scan rates per second, comma-separated.")
@click.option("--seconds", default=10.0, show_default=True, help="How long each rate runs (at least 100 scans).")
@click.option("--flood", default=10_000, show_default=True, help="Scans sent at once to find the saturation rate.")
@click.option("--search-samples", default=300, show_default=True, help="Searches per kind of query.")
@click.option("--big-ticket", "big_ticket", type=click.IntRange(min=10, max=2000), default=None,
              help="Instead: N scans into one ticket (latency at line 1, 500 and N) and a lane flooding one "
                   "ticket beside a quiet lane (customers and products default to 10,000).")
@click.option("--rounds", default=3, show_default=True, help="--big-ticket: tickets of N scans timed.")
@click.option("--flood-scans", default=20_000, show_default=True, help="--big-ticket: scans the flooding lane sends.")
@click.option("--flood-rates", default="2000,0", show_default=True,
              help="--big-ticket: the flooding lane's scans per second, one flood each, comma-separated (0: as fast as "
                   "it can send).")
@click.option("--quiet-rate", default=20.0, show_default=True, help="--big-ticket: the quiet lane's scans per second.")
@click.option("--quiet-seconds", default=10.0, show_default=True, help="--big-ticket: how long the quiet lane runs alone.")
@click.option("--flood-timeout", default=120.0, show_default=True,
              help="--big-ticket: stop waiting for the flood's answers after this many seconds.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep brokers' and databases' files here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def lane(customers: int, products: int, rate_lines: int, specific_prices: int, rates: str, seconds: float, flood: int,
         search_samples: int, big_ticket: int | None, rounds: int, flood_scans: int, flood_rates: str, quiet_rate: float,
         quiet_seconds: float, flood_timeout: float, workdir: Path | None, as_json: bool) -> None:
    """Scan -> ticket state latency at fixed rates and saturation, each beside the echo floor and the
    durable floor measured in the same run, and lane search latency; or, with --big-ticket, the cost of
    a line as a ticket grows and a flooded lane beside a quiet one."""
    from bench.lane import bench_lane, report

    if big_ticket is not None:
        try:
            flood_list = [float(r) for r in flood_rates.split(",") if r.strip()]
        except ValueError:
            raise click.BadParameter("flood rates must be numbers, e.g. 2000,0", param_hint="--flood-rates") from None
        _big_ticket(big_ticket, rounds, flood_scans, flood_list, quiet_rate, quiet_seconds, flood_timeout, customers,
                    products, workdir, as_json)
        return
    try:
        rate_list = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise click.BadParameter("rates must be numbers, e.g. 5,200,1000", param_hint="--rates") from None
    results: dict = {"machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="lanehub-bench-") as tmp:
        base = workdir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        click.echo(f"loading {customers} customers, {products} products; then scanning…", err=True)
        results |= bench_lane(base, customers, products, rate_lines, specific_prices, rate_list, seconds, flood,
                              search_samples)
    if as_json:
        _print(results, as_json)
        return
    # The scan figures mean little without their floors: printed side by side, not as raw dicts.
    for name, figures in results.items():
        if name == "scan":
            for line in report(results):
                click.echo(line)
        elif name != "saturation":  # report() printed it with the scans
            _print({name: figures}, as_json)


def _big_ticket(lines: int, rounds: int, flood_scans: int, flood_rates: list[float], quiet_rate: float,
                quiet_seconds: float, flood_timeout: float, customers: int, products: int, workdir: Path | None,
                as_json: bool) -> None:
    from bench.big_ticket import bench_big_ticket, report

    ctx = click.get_current_context()
    # The catalogue is not what this measures: a small one unless asked for.
    if ctx.get_parameter_source("customers") is click.core.ParameterSource.DEFAULT:
        customers = 10_000
    if ctx.get_parameter_source("products") is click.core.ParameterSource.DEFAULT:
        products = 10_000
    results: dict = {"machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="lanehub-bench-") as tmp:
        base = workdir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        click.echo(f"loading {customers} customers, {products} products; {rounds} tickets of {lines} scans, then "
                   f"{flood_scans} scans flooding one ticket…", err=True)
        results |= bench_big_ticket(base, lines, rounds, flood_scans, flood_rates, quiet_rate, quiet_seconds,
                                    flood_timeout, customers, products)
    if as_json:
        _print(results, as_json)
        return
    _print({"machine": results["machine"], "loaded": results["loaded"]}, as_json)
    for line in report(results):
        click.echo(line)


@bench.command("import")
@click.option("--customers", default=100_000, show_default=True, help="Rows in the POS export.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep the databases and files here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def import_(customers: int, workdir: Path | None, as_json: bool) -> None:
    """A POS customer import into HQ: creates, a no-change rerun, 1% changed, a SQL source."""
    from bench.importing import bench_import

    results: dict = {"machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="lanehub-bench-") as tmp:
        base = workdir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        click.echo(f"importing {customers} customers…", err=True)
        results["import"] = bench_import(base, customers)
    _print(results, as_json)


@bench.command("chain")
@click.option("--stores", default=1000, show_default=True, help="Simulated stores on the HQ broker.")
@click.option("--seconds", default=30.0, show_default=True, help="How long every store pushes.")
@click.option("--batch", default=5, show_default=True, help="Customer creates per up batch.")
@click.option("--interval", default=1.0, show_default=True,
              help="Seconds between a store's batches (none while one is unacked).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep the broker's and HQ's files here.")
@click.option("--postgres", "postgres_url", default="",
              help="A PostgreSQL database (libpq URL) to run HQ on too: 1 and 2 processes and a failover, each in "
                   "a new schema of its own, beside SQLite with 1 process.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def chain(stores: int, seconds: float, batch: int, interval: float, workdir: Path | None, postgres_url: str,
          as_json: bool) -> None:
    """Simulated stores (the real sync protocol, no edge) against real HQ processes and a
    real HQ broker: changes applied per second, ack and fan-out latency, HQ's memory; with
    --postgres, PostgreSQL with 1 and 2 HQ processes and a failover run, in the same run."""
    from bench.chain import bench_chain, postgres_schema

    runs: list[tuple[str, dict]] = [("sqlite_1", {})]
    if postgres_url:
        runs += [("postgresql_1", {"processes": 1}), ("postgresql_2", {"processes": 2}),
                 ("postgresql_2_failover", {"processes": 2, "kill_after": seconds / 2})]
    results: dict = {"machine": _machine()}
    for name, options in runs:
        with tempfile.TemporaryDirectory(prefix="lanehub-bench-") as tmp:
            base = (workdir / name) if workdir else Path(tmp)
            db = postgres_schema(postgres_url) if name.startswith("postgresql") else None
            click.echo(f"{name}: {stores} simulated stores, {batch} creates each every {interval:g} s "
                       f"for {seconds:g} s…", err=True)
            results[f"chain_{name}"] = bench_chain(base, stores, seconds, batch, interval, db=db, **options)
    _print(results, as_json)
