"""`lanehub demo`: a whole chain on this machine, stopped with Ctrl-C."""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import tempfile
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
# The login the demo makes at start (an HQ user: replicated, so it logs in at the stores too).
DEMO_USER = "demo"


class DemoStopped(Exception):
    """Ctrl-C or SIGTERM: stop what was started, in order."""


def _stop_on_signals(signum, frame):
    raise DemoStopped(signal.Signals(signum).name)


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default=None,
              help="Keep databases, configs and logs here (default: a temporary directory, removed on exit)")
@click.option("--customers", default=300, show_default=True, help="Demo customers loaded at HQ")
def demo(workdir, customers):
    """Run HQ, two stores and their brokers on free loopback ports."""
    keep = workdir is not None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="lanehub-demo-"))
    # The chain's processes run in sessions of their own (lanehub/chain), so the
    # terminal's Ctrl-C reaches only this process, which stops them in order:
    # devices, edges and HQ first, the brokers last (their clean stop statuses need them).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_on_signals)
    chain = Chain(workdir, tuple(DEMO_STORES), hq_settings=DEMO_IMPORTS, store_settings=DEMO_STORES)
    password = secrets.token_urlsafe(12)
    click.echo(f"Starting the lanehub demo in {workdir} ...")
    failed = _run(chain, customers, password, keep)
    if failed:
        click.echo(f"{failed} (the logs are in {workdir})", err=True)
    elif not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    click.echo("Stopped.")
    if failed:
        sys.exit(1)


def _run(chain: Chain, customers: int, password: str, keep: bool) -> str | None:
    """Start the chain, wait for Ctrl-C or SIGTERM, stop it: None, or what went wrong."""
    try:
        try:
            chain.start(demo_customers=customers, prepare=lambda c: _prepare(c, password))
            _load_catalogue(chain, chain.workdir)
            load_pos_demo(chain, chain.workdir)
            _wait_ready(chain)
            chain.start_simulators(DEMO_LANES)
            _wait_simulators(chain)
        except DemoStopped:
            raise
        except Exception as exc:
            return f"demo failed to start: {exc}"
        _print_summary(chain, customers, password, keep)
        while True:
            time.sleep(1)
            services = [chain.hq, *chain.edges.values(), *chain.simulators.values()]
            dead = [p.name for p in services if p is not None and not p.running]
            if dead:
                return f"stopped unexpectedly: {', '.join(dead)}"
    except DemoStopped:
        return None
    finally:
        # A second Ctrl-C must not cut the orderly stop short (it takes seconds).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        click.echo("Stopping the demo ...")
        chain.stop()


def _prepare(chain: Chain, password: str) -> None:
    """Before HQ starts: the extra fields, and the demo login (so it is in the stores' first snapshot)."""
    declare_demo_fields(chain)
    chain.hq_cli("users", "add", DEMO_USER, "--role", "admin", "--name", "Demo admin (demo only)",
                 "--password-stdin", "--by", "demo", input=password + "\n")


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
        if not edge.wait_for_log(": snapshot at seq", max(1.0, deadline - time.monotonic())):
            raise RuntimeError(f"edge {store} did not take its snapshot: {edge.tail(5)}")


def _wait_simulators(chain: Chain, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for store, sim in chain.simulators.items():
        if not sim.wait_for_log("simulated devices online", max(1.0, deadline - time.monotonic())):
            raise RuntimeError(f"the simulated devices of {store} did not come online: {sim.tail(5)}")


def lanehub_command() -> str:
    """How to type `lanehub` for the "Try:" lines: the name when the shell finds this
    one on PATH, else this virtualenv's script (`.venv/bin/lanehub` from the repository)."""
    script = Path(sys.executable).parent / "lanehub"
    on_path = shutil.which("lanehub")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        return "lanehub"
    if not script.exists():
        return f"{sys.executable} -m lanehub.cli.main"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _print_summary(chain: Chain, customers: int, password: str, keep: bool) -> None:
    hq = chain.hq_config_path
    assert chain.hq is not None  # the chain has started
    lanehub = lanehub_command()
    s001 = chain.store_brokers["S001"].port
    pages = [("HQ Manager", chain.web_url("hq"))]
    pages += [(f"store {store} admin", chain.web_url(store)) for store in chain.stores]
    # The lanes page (live tickets and devices) and each simulated lane's cashier screen.
    pages += [(f"store {store} lanes", chain.web_url(store, "/lanes/")) for store in chain.stores]
    pages += [(f"store {store} till {lane}", chain.web_url(store, f"/lanes/{lane}/till"))
              for store, sim in chain.simulators.items() for lane in sim.lanes]
    lines = ["", "lanehub demo is running:", *(f"  {label:<19} {url}" for label, url in pages)]
    lines += [
        f"  Log in as {DEMO_USER} with password {password}",
        "  (an admin made for this demo only: it works at HQ and both stores, and goes away with the demo).",
        "",
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
        "Sell on a till: scan with the barcode box (milk is 8410297112041), attach CUST-00001 by its code,",
        "close the sale: the receipt's picture shows on the till and prints on the simulated printer.",
        "",
        "Try (from this folder):",
        f"  {lanehub} hq customers add --first-name Ada --last-name Lovelace -c {hq}",
        f"  {lanehub} edge customers search lovelace -c {chain.edges['S002'].config_path}",
        f"  {lanehub} hq store list -c {hq}",
        f"  mosquitto_sub -p {s001} -t 'lanehub/#' -v",
        f"  mosquitto_pub -p {s001} -q 1 -t {topics.scan('S001', 'L1')} "
        f"-m '{{\"v\":1,\"id\":\"scan-1\",\"code\":\"8410297112041\"}}'",
        f"  mosquitto_pub -p {s001} -q 1 -t {topics.ticket_cmd('S001', 'L1')} "
        f"-m '{{\"v\":1,\"id\":\"close-1\",\"op\":\"close\"}}'   # closes L1's ticket: its receipt prints",
        f"  {lanehub} hq price MILK-1L --customer CUST-00001 -c {hq}",
        "",
        "Ctrl-C stops everything the demo started" + ("." if keep else f" and removes {chain.workdir}."),
    ]
    click.echo("\n".join(lines))
