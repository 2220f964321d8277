"""Device models, described by the profiles in ``devices/firmware-config/`` (one
TOML file per model, shipped in the package), and the udev rules generated from them.

A profile says what a device is (scanner, card reader, printer), how it is
reached (evdev by USB ids, serial, USB printer, network, file), how its data
is framed and, for printers, the paper width, code page and python-escpos
capability profile. A bad profile stops the bridge with one line naming the
file and the key, like any lanehub config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lanehub.runtime.config import ConfigError, Key, Schema, load

PROFILES_DIR = Path(__file__).resolve().parent / "firmware-config"
UDEV_RULES = "udev/99-lanehub.rules"
LINK_DIR = "lanehub"  # /dev/lanehub/<profile>: stable names whatever the USB port
KINDS = ("scanner", "card_reader", "printer")
CONNECTIONS = {"scanner": ("evdev", "serial"), "card_reader": ("evdev", "serial"),
               "printer": ("usb", "serial", "network", "file")}
USB_ID = re.compile(r"^[0-9a-f]{4}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

SCHEMA: Schema = {
    "device": {
        "model": Key(str, required=True),
        "kind": Key(str, required=True, choices=KINDS),
        "connection": Key(str, required=True, choices=("evdev", "serial", "usb", "network", "file")),
    },
    "usb": {
        "vendor_id": Key(str, "", pattern=re.compile(r"^([0-9a-f]{4})?$"), help="4 lower-case hex digits"),
        "product_id": Key(str, "", pattern=re.compile(r"^([0-9a-f]{4})?$"), help="4 lower-case hex digits"),
    },
    "serial": {
        "baudrate": Key(int, 9600, minimum=300),
        "bytesize": Key(int, 8, minimum=5),
        "parity": Key(str, "N", choices=("N", "E", "O", "M", "S")),
        "stopbits": Key(int, 1, minimum=1),
        "rtscts": Key(bool, False),
    },
    "network": {"port": Key(int, 9100, minimum=1)},
    "framing": {
        "prefix": Key(str, ""),
        "suffix": Key(str, ""),
        # evdev: the key that ends a read ("enter" or "tab"); serial: the byte(s).
        "terminator": Key(str, "\r"),
        "aim": Key(bool, False),
    },
    "keyboard": {"layout": Key(str, "us", choices=("us", "es", "de"))},
    "printer": {
        "columns": Key(int, 42, minimum=16),
        "codepage": Key(str, "cp858"),
        "escpos_profile": Key(str, "default"),
    },
}


@dataclass(frozen=True)
class DeviceProfile:
    name: str  # the file's stem: "zebra-ls2208-hid"
    model: str
    kind: str
    connection: str
    vendor_id: str
    product_id: str
    baudrate: int
    bytesize: int
    parity: str
    stopbits: int
    rtscts: bool
    network_port: int
    prefix: str
    suffix: str
    terminator: str
    aim: bool
    layout: str
    columns: int
    codepage: str
    escpos_profile: str

    @property
    def has_usb_ids(self) -> bool:
        return bool(self.vendor_id and self.product_id)


def load_profile(path: Path) -> DeviceProfile:
    config = load(path, SCHEMA, environ={})
    device, usb, serial, framing = config["device"], config["usb"], config["serial"], config["framing"]
    name = path.stem
    if not SLUG.match(name):
        raise ConfigError(f"{path}: file name must be lower-case letters, digits and '-' (it names the device)")
    if device["connection"] not in CONNECTIONS[device["kind"]]:
        raise ConfigError(f"{path}: [device] connection: a {device['kind']} connects by "
                          f"{' or '.join(CONNECTIONS[device['kind']])}, not {device['connection']}")
    if device["connection"] in ("evdev", "usb") and not (usb["vendor_id"] and usb["product_id"]):
        raise ConfigError(f"{path}: [usb] vendor_id: {device['connection']} devices are matched by USB vendor and product id")
    if device["connection"] == "evdev" and framing["terminator"] not in ("enter", "tab"):
        raise ConfigError(f"{path}: [framing] terminator: a keyboard-mode device ends a read with \"enter\" or \"tab\"")
    if device["connection"] == "serial" and not framing["terminator"]:
        raise ConfigError(f"{path}: [framing] terminator: a serial device needs a terminator (e.g. \"\\r\")")
    try:
        "x".encode(config["printer"]["codepage"])
    except LookupError:
        raise ConfigError(f"{path}: [printer] codepage: unknown code page {config['printer']['codepage']!r}") from None
    return DeviceProfile(
        name=name, model=device["model"], kind=device["kind"], connection=device["connection"],
        vendor_id=usb["vendor_id"], product_id=usb["product_id"], baudrate=serial["baudrate"],
        bytesize=serial["bytesize"], parity=serial["parity"], stopbits=serial["stopbits"], rtscts=serial["rtscts"],
        network_port=config["network"]["port"], prefix=framing["prefix"], suffix=framing["suffix"],
        terminator=framing["terminator"], aim=framing["aim"], layout=config["keyboard"]["layout"],
        columns=config["printer"]["columns"], codepage=config["printer"]["codepage"],
        escpos_profile=config["printer"]["escpos_profile"],
    )


def load_profiles(directory: Path = PROFILES_DIR, extra: Iterable[str | Path] = ()) -> dict[str, DeviceProfile]:
    """The profiles in ``directory``, then those of each ``extra`` folder: a profile
    of the same name (file stem) replaces the one before it."""
    profiles = {}
    for folder in (directory, *extra):
        folder = Path(folder)
        if folder != Path(directory) and not folder.is_dir():
            raise ConfigError(f"{folder}: no such profile folder")
        for path in sorted(folder.glob("*.toml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    return profiles


def udev_rules(profiles: dict[str, DeviceProfile], group: str = "lanehub") -> str:
    """Stable ``/dev/lanehub/<profile>`` links and group access for every profile
    matched by USB ids. Input devices are not tagged for the desktop seat, so a
    scanner never types into a console while the bridge is away."""
    lines = ["# Generated by `lanehub devices udev` from devices/firmware-config/*.toml: do not edit.", ""]
    for profile in profiles.values():
        if not profile.has_usb_ids:
            continue
        ids = f'ATTRS{{idVendor}}=="{profile.vendor_id}", ATTRS{{idProduct}}=="{profile.product_id}"'
        lines.append(f"# {profile.model} ({profile.kind}, {profile.connection})")
        if profile.connection == "evdev":
            lines.append(f'SUBSYSTEM=="input", KERNEL=="event*", {ids}, SYMLINK+="{LINK_DIR}/{profile.name}", '
                         f'GROUP="{group}", MODE="0660", TAG-="uaccess"')
        elif profile.connection == "usb":
            # python-escpos talks to USB printers through libusb: the usb device node.
            lines.append(f'SUBSYSTEM=="usb", ENV{{DEVTYPE}}=="usb_device", ATTR{{idVendor}}=="{profile.vendor_id}", '
                         f'ATTR{{idProduct}}=="{profile.product_id}", GROUP="{group}", MODE="0660"')
            lines.append(f'SUBSYSTEM=="usbmisc", KERNEL=="lp*", {ids}, SYMLINK+="{LINK_DIR}/{profile.name}", '
                         f'GROUP="{group}", MODE="0660"')
        elif profile.connection == "serial":
            lines.append(f'SUBSYSTEM=="tty", {ids}, SYMLINK+="{LINK_DIR}/{profile.name}", GROUP="{group}", MODE="0660"')
        lines.append("")
    return "\n".join(lines)


RULE_RE = re.compile(r'^(?P<key>[A-Z]+)(\{(?P<attr>[A-Za-z_]+)\})?(?P<op>==|!=|\+=|-=|=|:=)"(?P<value>[^"]*)"$')
MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ATTRS", "ATTR", "ENV", "TAG", "DRIVERS"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "OWNER", "TAG", "ENV"}


def check_udev_rules(text: str) -> list[str]:
    """Problems in a rules file (udev's syntax: comma-separated KEY[{attr}]OP"value"),
    for machines without ``udevadm verify``."""
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for part in (p.strip() for p in line.split(", ")):
            match = RULE_RE.match(part)
            if not match:
                problems.append(f"line {n}: cannot parse {part!r}")
                continue
            key, op = match["key"], match["op"]
            allowed = MATCH_KEYS if op in ("==", "!=") else ASSIGN_KEYS
            if key not in allowed:
                problems.append(f"line {n}: {key} cannot be used with {op}")
    return problems
