"""`lanehub devices ...`: run the bridges of one box, list profiles, generate udev rules."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from core.cli_util import config_option, fail_on_config_errors
from core.config import ConfigError
from core.process import run_until_signalled, setup_logging

from .profiles import PROFILES_DIR, UDEV_RULES, check_udev_rules, load_profiles, udev_rules

log = logging.getLogger(__name__)


@click.group()
def devices():
    """Lane devices: scanners, card readers and receipt printers on MQTT."""


class DeviceBridges:
    """Every bridge configured for this box, started and stopped together."""

    def __init__(self, config):
        from .bridges import EVDEV_MISSING, SOURCES, DeviceLink, ReaderBridge, evdev_available
        from .config import check_paths
        from .printer_bridge import PrinterBridge, printer_for

        settings = config["devices"]
        profiles = load_profiles(Path(settings["profiles"]) if settings["profiles"] else PROFILES_DIR)
        check_paths(config, profiles)
        self.bridges = []
        for name, device in config["device"].items():
            profile = profiles.get(device["profile"])
            if profile is None:
                raise ConfigError(f"{config.path}: [device.{name}] profile: no profile {device['profile']!r} "
                                  f"(known: {', '.join(profiles)})")
            if profile.connection == "evdev" and not evdev_available():
                # Otherwise the reader's thread dies on `import evdev` with a traceback.
                raise ConfigError(f"{config.path}: [device.{name}] profile: {profile.name} is a USB HID device; "
                                  f"{EVDEV_MISSING}")
            link = DeviceLink(config.broker("broker"), config["store"]["id"], name, device["lane"], profile.kind)
            if profile.kind == "printer":
                printer = printer_for(profile, device["path"], device["host"], device["port"])
                self.bridges.append(PrinterBridge(link, profile, printer, Path(settings["spool"]) / name, settings["retry"]))
            else:
                source = SOURCES[profile.connection](device["path"], profile)
                self.bridges.append(ReaderBridge(link, profile, source, settings["retry"]))

    def start(self) -> "DeviceBridges":
        for bridge in self.bridges:
            bridge.start()
        log.info("lanehub devices: %d bridge(s) running", len(self.bridges))
        return self

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.stop()


@devices.command()
@config_option("devices.toml")
def run(config_path):
    """Run every device bridge configured in devices.toml."""
    from .config import load_config

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
