"""`lanehub devices ...`: run the bridges of one box, list profiles, generate udev
rules, draw a receipt, simulate a store's lane devices."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

import click

from devices.printer.io import PrinterStatus
from devices.profiles import PROFILES_DIR, UDEV_RULES, check_udev_rules, load_profiles, udev_rules
from lanehub.cli.shared import config_option, fail_on_config_errors
from lanehub.runtime.config import Config, load
from lanehub.runtime.process import run_until_signalled, setup_logging

log = logging.getLogger(__name__)


@click.group()
def devices():
    """Lane devices: scanners, card readers and receipt printers on MQTT."""


@devices.command()
@config_option("devices.toml")
def run(config_path):
    """Run every device bridge configured in devices.toml."""
    from devices.config import load_config
    from devices.service import DeviceBridges  # here: serial, escpos and the bridges load only for `run`

    with fail_on_config_errors():
        config = load_config(config_path)
        setup_logging(config["log"]["level"])
        service = DeviceBridges(config).start()
    run_until_signalled(service)


@devices.command("profiles")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=PROFILES_DIR,
              show_default=True)
def profiles_command(directory):
    """List the device profiles (and check that every one is valid)."""
    with fail_on_config_errors():
        profiles = load_profiles(directory)
    for p in profiles.values():
        ids = f"{p.vendor_id}:{p.product_id}" if p.has_usb_ids else "-"
        click.echo(f"{p.name:<30} {p.kind:<12} {p.connection:<8} {ids:<10} {p.model}")


@devices.command("udev")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=PROFILES_DIR,
              show_default=True)
@click.option("--group", default="lanehub", show_default=True, help="The group that may open the devices.")
@click.option("--check", is_flag=True, help="Exit 1 if the rules file is not what the profiles generate.")
def udev_command(directory, group, check):
    """Write devices/firmware-config/udev/99-lanehub.rules from the profiles."""
    with fail_on_config_errors():
        text = udev_rules(load_profiles(directory), group)
    problems = check_udev_rules(text)
    if problems:
        raise click.ClickException("; ".join(problems))
    target = directory / UDEV_RULES
    if check:
        if not target.exists() or target.read_text() != text:
            raise click.ClickException(f"{target} is out of date: run `lanehub devices udev`")
        click.echo(f"{target} is up to date")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    click.echo(f"wrote {target}")


@devices.command("receipt")
@click.argument("job_file", metavar="JOB.json", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the PNG.")
@click.option("--profile", "profile_name", default=None,
              help="Draw it as this printer profile prints it (columns, code page); see `lanehub devices profiles`.")
@click.option("--columns", type=click.IntRange(min=16), default=None,
              help="Paper width in font A columns (42: 80 mm, 32: 58 mm) when no --profile is given  [default: 42]")
@click.option("--codepage", default=None, help="The printer's code page when no --profile is given  [default: cp858]")
def receipt_command(job_file, output, profile_name, columns, codepage):
    """Draw a print job's receipt (JOB.json, or - for stdin) as a PNG, as the printer prints it."""
    from lanehub.receipts.image import dot_width, receipt_png

    if profile_name and (columns or codepage):
        raise click.UsageError("give --profile or --columns/--codepage, not both")
    escpos_profile = "default"
    if profile_name:
        with fail_on_config_errors():
            profiles = load_profiles()
        profile = profiles.get(profile_name)
        if profile is None or profile.kind != "printer":
            printers = ", ".join(p.name for p in profiles.values() if p.kind == "printer")
            raise click.ClickException(f"no printer profile {profile_name!r} (printers: {printers})")
        columns, codepage, escpos_profile = profile.columns, profile.codepage, profile.escpos_profile
    receipt = _read_receipt(job_file)
    try:
        data = receipt_png(receipt, columns=columns or 42, codepage=codepage or "cp858", profile=escpos_profile)
    except ValueError as exc:  # an unknown code page, too few columns
        raise click.ClickException(str(exc))
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"wrote {output} ({dot_width(columns or 42)} dots wide)")


def _read_receipt(job_file: str) -> dict:
    """A print job ``{"job", "receipt"}`` as on the wire, or a bare receipt; one clear line when it is neither."""
    name = "stdin" if job_file == "-" else job_file
    try:
        text = sys.stdin.read() if job_file == "-" else Path(job_file).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise click.ClickException(f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        raise click.ClickException(f"{name}: not UTF-8 text")
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{name}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    receipt = data.get("receipt", data) if isinstance(data, dict) else None
    if not isinstance(receipt, dict) or not receipt:
        raise click.ClickException(f"{name}: not a print job or a receipt (expected a JSON object, "
                                   f"with the receipt under \"receipt\" for a print job)")
    return receipt


def load_store_config(path) -> Config:
    """The store id and broker from a devices.toml, or from another file of the
    store's (an edge.toml): only ``[store] id``, ``[broker]`` and ``[log]`` are
    read, each checked as devices.toml's own keys are."""
    from devices.config import SCHEMA as DEVICES

    return load(path, {"store": DEVICES["store"], "broker": DEVICES["broker"], "log": DEVICES["log"]}, partial=True)


class SimulatorService:
    """The simulated devices and their form, stopped together by ``run_until_signalled``."""

    def __init__(self, simulator, form=None):
        self.simulator, self.form = simulator, form

    def stop(self) -> None:
        if self.form:
            self.form.stop()
        self.simulator.stop()
        click.echo("lanehub devices simulate: stopped")


@devices.command("simulate")
@config_option("devices.toml")
@click.option("--lane", "lanes", multiple=True, default=("L1",), show_default=True,
              help="A lane to simulate devices for; repeat for several.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("receipts"), show_default=True,
              help="Printed receipts go here as <ticket>-<job>.png and .txt.")
@click.option("--file", "codes_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Read lines (scans, cards, printer modes) from this file once the devices are online.")
@click.option("--stdin/--no-stdin", "read_stdin", default=True, show_default=True,
              help="Read lines from standard input.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None,
              help="Serve the simulator's form on this port (0: any free port).")
@click.option("--http-host", default="127.0.0.1", show_default=True,
              help="The form's address (loopback unless you mean it).")
@click.option("--printer-profile", default="epson-tm-t88-network", show_default=True,
              help="The printer profile the simulated printers print as (columns, code page).")
@click.option("--printer-mode", type=click.Choice([s.value for s in PrinterStatus if s is not PrinterStatus.UNKNOWN]),
              default="ok", show_default=True, help="Every printer's mode at the start.")
@click.option("--retry", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between a held job's retries.")
def simulate_command(config_path, lanes, out, codes_file, read_stdin, http_port, http_host, printer_profile,
                     printer_mode, retry):
    """Simulated scanners, card readers and receipt printers for LANEs on a store broker."""
    with fail_on_config_errors():
        config = load_store_config(config_path)
    # First: python-escpos (imported by the simulator) sets up logging when imported.
    setup_logging(config["log"]["level"])
    from devices.simulate.simulator import Simulator, read_lines

    try:
        simulator = Simulator(config.broker("broker"), config["store"]["id"], tuple(lanes), out,
                              printer_profile=printer_profile, retry=retry)
        if printer_mode != "ok":
            simulator.set_printer_mode("", printer_mode)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    simulator.start()
    form = None
    if http_port is not None:
        from devices.simulate.form import SimulatorForm

        try:
            form = SimulatorForm(simulator, http_host, http_port).start()
        except OSError as exc:
            simulator.stop()
            raise click.ClickException(f"cannot serve the form on {http_host}:{http_port}: {exc.strerror or exc}")
    devices_online = simulator.wait_connected(10)
    ids = ", ".join(i for lane in simulator.lanes.values() for i in lane.ids.values())
    click.echo(f"simulated devices {'online' if devices_online else 'connecting'} "
               f"(store {simulator.store}): {ids}")
    if form:
        click.echo(f"form: {form.url}")
    if read_stdin:
        click.echo(simulator.help)

    def feed(stream):
        read_lines(simulator, stream, lambda text: click.echo(text))

    def feed_file():
        with codes_file.open(encoding="utf-8", errors="replace") as stream:
            feed(stream)

    if codes_file:
        threading.Thread(target=feed_file, name="codes-file", daemon=True).start()
    if read_stdin:
        threading.Thread(target=feed, args=(sys.stdin,), name="stdin", daemon=True).start()
    run_until_signalled(SimulatorService(simulator, form))
