"""Bridges between lane devices and the store broker (docs/protocol.md).

Each device has its own MQTT connection, so each has its own last will: its
retained ``device/{device}/status`` turns ``offline`` the moment the bridge
dies. Readers (scanners, card readers) run a thread that opens the device,
frames what it sends, and publishes; an unplugged device is reported and
reopened every ``retry`` seconds, never in a busy loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Callable

import serial

from devices.link import DeviceLink
from devices.profiles import DeviceProfile
from devices.readers.keymap import KeyDecoder, strip_aim
from devices.readers.swipe import parse_swipe
from lanehub.protocol import topics
from lanehub.protocol.lane import CardRead, Scan

if TYPE_CHECKING:  # an optional dependency, imported where it is used
    import evdev

log = logging.getLogger(__name__)


# --- sources: where a reader's frames come from ------------------------------------------

class SerialSource:
    """A serial scanner or reader: pyserial with a timeout and ``read_until(terminator)``."""

    def __init__(self, path: str, profile: DeviceProfile):
        self.path, self.profile = path, profile
        self.port: serial.Serial | None = None
        self.terminator = profile.terminator.encode("latin-1")
        self.pending = b""

    def open(self) -> None:
        p = self.profile
        self.port = serial.Serial(self.path, baudrate=p.baudrate, bytesize=p.bytesize, parity=p.parity,
                                  stopbits=p.stopbits, rtscts=p.rtscts, timeout=0.2)

    def read(self) -> str | None:
        """One frame, or None when nothing complete arrived within the timeout.
        Raises OSError/SerialException when the device is gone."""
        assert self.port is not None  # read only between open and close
        chunk = self.port.read_until(self.terminator)
        if not chunk:
            # pyserial returns b"" on a timeout, and also (without raising) when the
            # other end of a tty hung up: ask the port whether it is still there.
            if not self._alive():
                raise OSError("device disconnected")
            return None
        self.pending += chunk
        if not self.pending.endswith(self.terminator):
            return None
        frame, self.pending = self.pending[:-len(self.terminator)], b""
        return frame.decode("latin-1")

    def _alive(self) -> bool:
        assert self.port is not None  # asked only by read
        try:
            _ = self.port.in_waiting  # raises once the device is gone
        except (OSError, serial.SerialException):
            return False
        return os.path.exists(self.path)

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            except (OSError, serial.SerialException):
                pass
            self.port = None


EVDEV_MISSING = "HID devices need evdev: install lanehub[devices]"


def evdev_available() -> bool:
    """evdev is an optional dependency (the ``devices`` extra: a C extension that
    needs gcc and the kernel headers), so HQ and boxes without HID devices go
    without it."""
    try:
        import evdev  # noqa: F401
    except ImportError:
        return False
    return True


class EvdevSource:
    """A USB HID (keyboard-mode) scanner or reader, grabbed exclusively so its
    keystrokes never reach a console, decoded with the profile's layout.
    Needs evdev (``evdev_available()``; `lanehub devices run` checks first)."""

    def __init__(self, path: str, profile: DeviceProfile):
        self.path, self.profile = path, profile
        self.device: evdev.InputDevice[str] | None = None
        self.decoder = KeyDecoder(profile.layout, profile.terminator)

    def open(self) -> None:
        import evdev

        self.device = evdev.InputDevice(self.path or self._find(evdev))
        self.device.grab()
        self.decoder.reset()

    def _find(self, evdev) -> str:
        """Without a path (no udev rules installed), the first input device with
        the profile's USB ids that has keys."""
        vendor, product = int(self.profile.vendor_id, 16), int(self.profile.product_id, 16)
        for path in evdev.list_devices():
            device = evdev.InputDevice(path)
            try:
                if (device.info.vendor, device.info.product) == (vendor, product) and \
                        evdev.ecodes.EV_KEY in device.capabilities():
                    return path
            finally:
                device.close()
        raise OSError(f"no input device {self.profile.vendor_id}:{self.profile.product_id} is plugged in")

    def read(self) -> str | None:
        import select

        assert self.device is not None  # read only between open and close
        ready, _, _ = select.select([self.device.fd], [], [], 0.2)
        if not ready:
            return None
        for event in self.device.read():  # OSError (ENODEV) when unplugged
            text = self.decoder.feed_event(event)
            if text is not None:
                return text
        return None

    def close(self) -> None:
        if self.device is not None:
            try:
                self.device.ungrab()
            except OSError:
                pass
            self.device.close()
            self.device = None


SOURCES: dict[str, Callable[[str, DeviceProfile], SerialSource | EvdevSource]] = {"serial": SerialSource, "evdev": EvdevSource}


class ReaderBridge:
    """A scanner or card reader: frames in, ``scan``/``card`` (or ``error``) out."""

    def __init__(self, link: DeviceLink, profile: DeviceProfile, source, retry: float):
        self.link, self.profile, self.source, self.retry = link, profile, source, retry
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"reader-{link.device}", daemon=True)

    def start(self) -> "ReaderBridge":
        self.link.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.link.stop()

    def _run(self) -> None:
        told = ""  # the open error last logged: logged again only when it changes
        while not self._stop.is_set():
            try:
                self.source.open()
            except (OSError, serial.SerialException) as exc:
                self.link.set_state(False, "unplugged")
                if str(exc) != told:
                    told = str(exc)
                    log.warning("%s: cannot open %s (%s); retrying every %g s", self.link.device, self.source.path,
                                exc, self.retry)
                self._stop.wait(self.retry)
                continue
            told = ""
            self.link.set_state(True, "")
            log.info("%s: reading %s", self.link.device, self.source.path)
            try:
                while not self._stop.is_set():
                    frame = self.source.read()
                    if frame is not None:
                        self.handle(frame)
            except (OSError, serial.SerialException) as exc:
                log.warning("%s: device lost (%s)", self.link.device, exc)
                self.link.set_state(False, "unplugged")
            finally:
                self.source.close()
            self._stop.wait(self.retry)

    def handle(self, frame: str) -> None:
        """One framed read: strip the profile's prefix/suffix and publish it."""
        p = self.profile
        text = frame.strip("\r\n")
        if p.prefix and text.startswith(p.prefix):
            text = text[len(p.prefix):]
        if p.suffix and text.endswith(p.suffix):
            text = text[:-len(p.suffix)]
        if not text:
            return
        if p.kind == "scanner":
            # Always, whatever the profile's ``aim`` says: a scanner reprogrammed to send
            # AIM identifiers must not turn every scan into an unknown code.
            symbology, text = strip_aim(text)
            if not text:
                return
            scan = Scan(id=str(uuid.uuid4()), code=text, ts=time.time(), device=self.link.device, symbology=symbology)
            self.link.client.publish(topics.scan(self.link.store, self.link.lane), scan.to_json())
            return
        swipe = parse_swipe(text)
        if swipe.kind == "card":
            card = CardRead(id=str(uuid.uuid4()), card=swipe.number, ts=time.time(), device=self.link.device)
            self.link.client.publish(topics.card(self.link.store, self.link.lane), card.to_json())
        elif swipe.kind == "payment":
            # Never published, stored or logged: only the masked number leaves the bridge.
            log.warning("%s: payment card refused (%s)", self.link.device, swipe.masked)
            self.link.error(f"payment card refused: {swipe.masked} (use the payment terminal)")
        else:
            log.warning("%s: card read error: %s", self.link.device, swipe.reason)
            self.link.error(f"card read error: {swipe.reason}")
