"""`lanehub demo`: a whole chain on this machine, stopped with Ctrl-C."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path

import click

from lanehub.chain.demo_data import DEMO_IMPORTS, DEMO_POS_CSV, DEMO_PRODUCTS, DEMO_SIGNUPS_CSV, demo_products_csv
from lanehub.chain.local import Chain
from lanehub.protocol import topics

# Every demo store has these lanes, each with a simulated scanner, card reader and
# receipt printer (`lanehub devices simulate`), so that demo receipts really print.
DEMO_LANES = ("L1", "L2")
# What the demo receipts' headers say.
DEMO_STORES = {
    "S001": {"name": "Lanehub Market Centro", "address": "Calle Mayor 1, Madrid", "tax_id": "B12345678"},
    "S002": {"name": "Lanehub Market Playa", "address": "Paseo Marítimo 12, Málaga", "tax_id": "B12345678"},
}


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default=None,
              help="Keep databases, configs and logs here (default: a new temporary directory)")
@click.option("--customers", default=300, show_default=True, help="Demo customers loaded at HQ")
def demo(workdir, customers):
    """Run HQ, two stores and their brokers on free loopback ports."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="lanehub-demo-"))
    chain = Chain(workdir, tuple(DEMO_STORES), hq_settings=DEMO_IMPORTS, store_settings=DEMO_STORES)
    click.echo(f"Starting the lanehub demo in {workdir} ...")
    try:
        chain.start(demo_customers=customers, prepare=declare_demo_fields)
        _load_catalogue(chain, workdir)
        load_pos_demo(chain, workdir)
        _wait_ready(chain)
        chain.start_simulators(DEMO_LANES)
        _wait_simulators(chain)
    except Exception as exc:
        chain.stop()
        raise click.ClickException(f"demo failed to start: {exc}")
    _print_summary(chain, customers)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(1):
            dead = [p.name for p in [chain.hq, *chain.edges.values(), *chain.simulators.values()] if not p.running]
            if dead:
                click.echo(f"stopped unexpectedly: {', '.join(dead)} (see the logs in {workdir})", err=True)
                break
    finally:
        click.echo("Stopping the demo ...")
        chain.stop()
        click.echo("Stopped.")


def _load_catalogue(chain: Chain, workdir: Path) -> None:
    """A small grocery catalogue and a 10 % VIP rate on milk and oil, for the lanes."""
    csv = workdir / "demo-products.csv"
    csv.write_text(demo_products_csv(), encoding="utf-8")
    chain.hq_cli("products", "import", str(csv), "--by", "demo")
    chain.hq_cli("rates", "add", "VIP", "--name", "VIP customers", "--start", "2020-01-01", "--by", "demo")
    for sku in ("MILK-1L", "OIL-1L"):
        chain.hq_cli("rates", "line", "VIP", sku, "--discount", "10", "--by", "demo")
    if chain.hq_cli("customers", "show", "CUST-00001", check=False).returncode == 0:
        chain.hq_cli("rates", "assign", "VIP", "CUST-00001", "--by", "demo")


def declare_demo_fields(chain: Chain) -> None:
    """The extra fields ``DEMO_IMPORTS`` refers to, declared before HQ starts (HQ checks them)."""
    chain.hq_cli("extra-fields", "add", "loyalty_tier", "Loyalty tier", "--by", "demo")
    chain.hq_cli("extra-fields", "add", "birthday", "Birthday", "--by", "demo")


def load_pos_demo(chain: Chain, workdir: Path) -> None:
    """Customers imported from a sample POS export (fields the POS owns are read-only)
    and a new-customers batch waiting for review. ``chain`` runs HQ with ``DEMO_IMPORTS``
    and was started with ``prepare=declare_demo_fields``."""
    pos = workdir / "demo-pos-customers.csv"
    pos.write_text(DEMO_POS_CSV, encoding="utf-8")
    chain.hq_cli("import", "customers", str(pos), "--by", "demo")
    signups = workdir / "demo-signups.csv"
    signups.write_text(DEMO_SIGNUPS_CSV, encoding="utf-8")
    chain.hq_cli("batch", "new-customers", str(signups), "--description", "Sign-up sheets, week 48", "--by", "demo")


def _wait_ready(chain: Chain, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for store, edge in chain.edges.items():
        if not edge.wait_for_log("snapshot of", max(1.0, deadline - time.monotonic())):
            raise RuntimeError(f"edge {store} did not take its snapshot: {edge.tail(5)}")


def _wait_simulators(chain: Chain, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for store, sim in chain.simulators.items():
        if not sim.wait_for_log("simulated devices online", max(1.0, deadline - time.monotonic())):
            raise RuntimeError(f"the simulated devices of {store} did not come online: {sim.tail(5)}")


def _print_summary(chain: Chain, customers: int) -> None:
    hq = chain.hq_config_path
    assert chain.hq is not None  # the chain has started
    lines = [
        "",
        "lanehub demo is running:",
        f"  HQ broker      mqtt://127.0.0.1:{chain.hq_broker.port}  (user hq, ACL per store)",
        f"  HQ service     config {hq}, log {chain.hq.log_path}",
    ]
    for store, edge in chain.edges.items():
        lines.append(f"  store {store}     broker mqtt://127.0.0.1:{chain.store_brokers[store].port}, "
                     f"config {edge.config_path}, log {edge.log_path}")
    for store, sim in chain.simulators.items():
        lines.append(f"  {store} devices   simulated scanner, card reader and printer on lanes {', '.join(sim.lanes)}: "
                     f"scan at {sim.url}, receipts printed to {sim.out}")
    lines += [
        f"  {customers} demo customers and {len(DEMO_PRODUCTS)} products loaded at HQ and replicated to both stores;",
        "  CUST-00001 has the VIP rate (10 % off milk and oil).",
        "  4 customers imported from a sample POS export (the fields the POS owns are read-only on the pages);",
        "  batch 1 (new customers, with a possible duplicate and a bad e-mail) waits for review under Batches.",
        "",
        "Try:",
        f"  lanehub hq customers add --first-name Ada --last-name Lovelace -c {hq}",
        f"  lanehub edge customers search lovelace -c {chain.edges['S002'].config_path}",
        f"  lanehub hq store list -c {hq}",
        f"  mosquitto_sub -p {chain.store_brokers['S001'].port} -t 'lanehub/#' -v",
        f"  mosquitto_pub -p {chain.store_brokers['S001'].port} -q 1 -t {topics.scan('S001', 'L1')} "
        f"-m '{{\"v\":1,\"id\":\"scan-1\",\"code\":\"8410297112041\"}}'",
        f"  mosquitto_pub -p {chain.store_brokers['S001'].port} -q 1 -t {topics.ticket_cmd('S001', 'L1')} "
        f"-m '{{\"v\":1,\"id\":\"close-1\",\"op\":\"close\"}}'   (closes L1's ticket: its receipt prints)",
        f"  lanehub hq price MILK-1L --customer CUST-00001 -c {hq}",
        "",
        "Ctrl-C stops everything the demo started.",
    ]
    click.echo("\n".join(lines))
