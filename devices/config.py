"""devices.toml: the store broker, the spool, and one [device.ID] table per device.

    [store]
    id = "S001"

    [device.SC1]
    profile = "zebra-ls2208-hid"
    lane = "L1"
    path = "/dev/lanehub/zebra-ls2208-hid"

    [device.P1]
    profile = "epson-tm-t88-network"
    lane = "L1"
    host = "192.168.1.50"
"""

from __future__ import annotations

from lanehub.protocol.topics import ID_RE
from lanehub.runtime.config import STORE_ID, Config, ConfigError, Key, Schema, Tables, broker_keys, load

SCHEMA: Schema = {
    "store": {"id": STORE_ID},
    "broker": broker_keys(),
    "devices": {
        # Folders of extra device profiles, added to the firmware-config/ shipped with
        # lanehub (a profile of the same name replaces the shipped one; later folders win).
        "profiles": Key(list, [], path=True),
        # Print jobs are kept here until printed (one sub-directory per printer).
        "spool": Key(str, "spool", path=True),
        # Seconds between retries of an unplugged device or a printer that cannot print.
        "retry": Key(float, 2.0, minimum=0.1),
        # Seconds between status checks (DLE EOT) of an idle printer: how late paper
        # out or an open cover shows on the store page when nothing is printing.
        "status_every": Key(float, 10.0, minimum=0.5),
    },
    "device": Tables({
        "profile": Key(str, required=True),
        "lane": Key(str, required=True, pattern=ID_RE, help="lane id must be letters, digits, '_', '.', '-' (max 32)"),
        # evdev or serial device, USB printer character device, or file.
        "path": Key(str, "", path=True),
        # Network printers.
        "host": Key(str, ""),
        "port": Key(int, 0, minimum=0),
    }, name_pattern=ID_RE, name_help="device id must be letters, digits, '_', '.', '-' (max 32)"),
    "log": {"level": Key(str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))},
}


def load_config(path) -> Config:
    config = load(path, SCHEMA)
    if not config["device"]:
        raise ConfigError(f"{path}: [device.ID]: no device configured")
    # A HID device may go without a path: it is then found by its profile's USB ids.
    return config


def check_paths(config: Config, profiles) -> None:
    for name, device in config["device"].items():
        profile = profiles.get(device["profile"])
        if profile is None or profile.connection == "evdev":
            continue
        if profile.connection == "network" and not device["host"]:
            raise ConfigError(f"{config.path}: [device.{name}] host: a network printer needs its host")
        if profile.connection != "network" and not device["path"]:
            raise ConfigError(f"{config.path}: [device.{name}] path: give the device's path")
