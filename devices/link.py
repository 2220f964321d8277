"""A device's own MQTT connection to the store broker, shared by every bridge kind.

Each device has its own connection, so each has its own last will: its retained
``device/{device}/status`` turns ``offline`` the moment the bridge dies. Before it
connects, a bridge claims its device id (ids are unique per store: they are also
the MQTT client ids), so two bridges configured with one id refuse to run instead
of kicking each other off the broker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import replace

from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import DEVICE_HEARTBEAT, DeviceStatus
from lanehub.runtime.mqtt import BrokerSettings, MqttClient
from lanehub.runtime.report import publish_report

log = logging.getLogger(__name__)


# A bridge's MQTT keepalive: the broker publishes its last will (offline) after
# 1.5 x this without a packet, checked on its own coarse schedule (Mosquitto 2.0.11:
# 4-10 s with 3). The edge does not wait for it: it ages statuses not repeated
# every DEVICE_HEARTBEAT (lanehub/protocol/lane.py).
BRIDGE_KEEPALIVE = 3
CLAIM_LOOK = 0.5  # seconds to wait for a device id's retained status before claiming it


class DeviceIdTaken(RuntimeError):
    """Another bridge is online with this device id on the store broker."""


class DeviceLink:
    """One device's MQTT connection: its status (with last will) and its publishes."""

    def __init__(self, broker: BrokerSettings, store: str, device: str, lane: str, kind: str):
        self.store, self.device, self.lane, self.kind = store, device, lane, kind
        self.broker = replace(broker, keepalive=min(broker.keepalive, BRIDGE_KEEPALIVE))
        self.status_topic = topics.device_status(store, device)
        self.instance = uuid.uuid4().hex[:12]  # tells this bridge's statuses from another's
        self.detail = ""
        self.online = False
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{device}", daemon=True)
        self.client = MqttClient(
            self.broker, f"lanehub-device-{store}-{device}",
            will=(self.status_topic, self._status("offline", "bridge gone")),
            on_connect=lambda: self.client.publish(self.status_topic, self._current(), retain=True),
            on_taken_over=self._taken_over, name="store broker",
        )

    def claim(self) -> None:
        """Raise DeviceIdTaken when another bridge is online with this device id.

        Device ids (and so MQTT client ids) are unique per store: two bridges with
        one id would kick each other off the broker for ever. An ``online`` status
        may also be a bridge that just died (its will comes after 1.5 keepalives),
        so wait that long for it to turn offline before refusing. When the broker
        cannot be reached the bridge starts anyway (a device works through outages).
        """
        statuses: list[DeviceStatus | None] = []

        def seen(msg) -> None:
            try:
                statuses.append(DeviceStatus.parse(msg.payload) if msg.payload else None)
            except PayloadError:
                statuses.append(None)

        probe = MqttClient(self.broker, f"lanehub-claim-{self.store}-{self.device}-{self.instance}", name="store broker")
        probe.subscribe(self.status_topic, seen)
        probe.start()
        try:
            if not probe.wait_connected(5):
                log.warning("%s: store broker not reachable; starting without checking the device id", self.device)
                return
            deadline = time.monotonic() + CLAIM_LOOK
            while time.monotonic() < deadline:
                time.sleep(0.05)
            deadline = time.monotonic() + 1.5 * BRIDGE_KEEPALIVE + 2
            while statuses and statuses[-1] is not None and statuses[-1].state == "online" \
                    and statuses[-1].instance != self.instance:
                if time.monotonic() > deadline:
                    other = statuses[-1]
                    raise DeviceIdTaken(
                        f"device {self.device} is already online on store {self.store}'s broker ({other.kind or 'device'}"
                        f"{', lane ' + other.lane if other.lane else ''}): another bridge runs with this device id; "
                        f"give this one another id (device ids are unique per store)")
                time.sleep(0.1)
        finally:
            probe.stop()

    def _taken_over(self) -> None:
        log.error("%s: another bridge connected with this device id (%s) and took over its broker session; "
                  "this bridge stops talking to the broker (device ids are unique per store)",
                  self.device, self.client.client_id)

    def _status(self, state: str, detail: str) -> bytes:
        return DeviceStatus(state=state, kind=self.kind, lane=self.lane, detail=detail,
                            instance=self.instance).to_json()

    def _current(self) -> bytes:
        return self._status("online" if self.online else "offline", self.detail)

    def set_state(self, online: bool, detail: str = "") -> None:
        """Publish the device's state when it changes (retained)."""
        if (online, detail) == (self.online, self.detail):
            return
        self.online, self.detail = online, detail
        self.client.publish(self.status_topic, self._current(), retain=True)

    def error(self, reason: str, excerpt: str = "") -> None:
        topic = (topics.scan if self.kind == "scanner" else topics.card)(self.store, self.lane)
        publish_report(self.client, self.store, topic, f"{self.device}: {reason}", excerpt, log)

    def _beat(self) -> None:
        """Repeat the retained status: the edge counts a device it stops hearing as offline."""
        while not self._stopped.wait(DEVICE_HEARTBEAT):
            if self.client.connected.is_set():
                self.client.publish(self.status_topic, self._current(), retain=True)

    def start(self) -> None:
        self.client.start()
        self._heartbeat.start()

    def stop(self) -> None:
        self._stopped.set()
        self.client.stop(last=(self.status_topic, self._status("offline", "stopped")))
