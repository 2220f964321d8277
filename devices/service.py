"""Every bridge of one box (`lanehub devices run`): built from devices.toml, started and stopped together."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devices.config import check_paths
from devices.link import DeviceIdTaken, DeviceLink
from devices.printer.bridge import PrinterBridge, printer_for
from devices.profiles import PROFILES_DIR, load_profiles
from devices.readers.bridge import EVDEV_MISSING, SOURCES, ReaderBridge, evdev_available
from lanehub.runtime.config import Config, ConfigError

log = logging.getLogger(__name__)


class DeviceBridges:
    """Every bridge configured for this box, started and stopped together."""

    def __init__(self, config: Config):
        settings = config["devices"]
        self.config_path = config.path
        try:
            profiles = load_profiles(PROFILES_DIR, settings["profiles"])
        except ConfigError as exc:
            raise ConfigError(f"{config.path}: [devices] profiles: {exc}") from None
        check_paths(config, profiles)
        self.bridges: list[PrinterBridge | ReaderBridge] = []
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
                self.bridges.append(PrinterBridge(link, profile, printer, Path(settings["spool"]) / name, settings["retry"],
                                                  status_every=settings["status_every"]))
            else:
                source = SOURCES[profile.connection](device["path"], profile)
                self.bridges.append(ReaderBridge(link, profile, source, settings["retry"]))

    def start(self) -> "DeviceBridges":
        """Claim every device id (refused when another bridge is online with one),
        then start every bridge."""
        with ThreadPoolExecutor(max(1, len(self.bridges))) as pool:
            claims = [(bridge.link.device, pool.submit(bridge.link.claim)) for bridge in self.bridges]
            for device, claim in claims:
                try:
                    claim.result()
                except DeviceIdTaken as exc:
                    raise ConfigError(f"{self.config_path}: [device.{device}]: {exc}") from None
        for bridge in self.bridges:
            bridge.start()
        log.info("lanehub devices: %d bridge(s) running", len(self.bridges))
        return self

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.stop()
