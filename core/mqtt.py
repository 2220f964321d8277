"""MQTT transport: the one place lanehub talks to paho-mqtt.

- MQTT 5, TCP_NODELAY on every socket (DESIGN section 11: ~88 ms -> ~0.3 ms
  per request/reply through Mosquitto);
- ``subscribe()`` returns its unsubscribe; subscriptions are replayed on
  every reconnect;
- handlers run on paho's network thread and must be quick: services hand
  real work to a ``core.worker.Worker``. A handler that raises is logged and
  reported through ``on_handler_error``; the loop never dies;
- ``request()`` publishes with an MQTT 5 response topic and correlation data
  and waits for the matching reply, which is intercepted before dispatch so
  a worker blocked on a request cannot deadlock on its own reply.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

DEFAULT_SESSION_EXPIRY = 7 * 24 * 3600


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    keepalive: int = 30


@dataclass(frozen=True)
class PublishResult:
    ok: bool
    reason: str


class RequestTimeout(TimeoutError):
    pass


Handler = Callable[[Incoming], None]


class MqttClient:
    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        *,
        clean_start: bool = True,
        session_expiry: int = 0,
        will: tuple[str, bytes] | None = None,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_handler_error: Callable[[Incoming, Exception], None] | None = None,
    ):
        self.settings = settings
        self.client_id = client_id
        self._clean_start = clean_start
        self._session_expiry = session_expiry
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self._on_handler_error = on_handler_error
        self._subs: list[tuple[str, int, Handler]] = []
        self._lock = threading.Lock()
        self._pending: dict[bytes, tuple[threading.Event, list]] = {}
        self._puback: dict[int, tuple[threading.Event, list]] = {}
        self.connected = threading.Event()
        self._stopping = False

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        client.max_inflight_messages_set(100)
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if settings.tls_ca or settings.tls_cert:
            client.tls_set(
                ca_certs=settings.tls_ca or None,
                certfile=settings.tls_cert or None,
                keyfile=settings.tls_key or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if will:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_socket_open = self._socket_open
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_publish = self._published
        self._client = client

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        if self._session_expiry:
            properties.SessionExpiryInterval = self._session_expiry
        self._client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive,
            clean_start=self._clean_start, properties=properties,
        )
        self._client.loop_start()

    def stop(self, last: tuple[str, bytes] | None = None) -> None:
        """Disconnect cleanly, publishing ``last`` (a retained status) first when connected."""
        self._stopping = True
        if last and self.connected.is_set():
            info = self._client.publish(last[0], last[1], qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout: float = 10) -> bool:
        return self.connected.wait(timeout)

    # --- paho callbacks (network thread) --------------------------------------------

    @staticmethod
    def _socket_open(client, userdata, sock) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s: broker %s:%s refused the connection: %s", self.client_id,
                        self.settings.host, self.settings.port, reason_code)
            return
        with self._lock:
            subs = list(self._subs)
        for topic_filter, qos, _ in {(f, q, None) for f, q, _ in subs}:
            client.subscribe(topic_filter, qos=qos)
        self.connected.set()
        log.info("%s: connected to %s:%s", self.client_id, self.settings.host, self.settings.port)
        if self._on_connect_cb:
            self._safe(self._on_connect_cb)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stopping:
            log.warning("%s: lost the broker (%s); reconnecting", self.client_id, reason_code)
        if self._on_disconnect_cb:
            self._safe(self._on_disconnect_cb)

    def _published(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            waiter = self._puback.pop(mid, None)
        if waiter:
            waiter[1].append(reason_code)
            waiter[0].set()

    def _message(self, client, userdata, msg) -> None:
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None) if props else None
        incoming = Incoming(
            topic=msg.topic, payload=msg.payload, retain=bool(msg.retain),
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation=correlation,
        )
        if correlation is not None:
            with self._lock:
                waiter = self._pending.pop(correlation, None)
            if waiter:
                waiter[1].append(incoming)
                waiter[0].set()
                return
        with self._lock:
            handlers = [h for f, _, h in self._subs if paho.topic_matches_sub(f, msg.topic)]
        for handler in handlers:
            try:
                handler(incoming)
            except Exception as exc:  # a handler bug must not kill the network loop
                log.exception("%s: handler for %s failed", self.client_id, msg.topic)
                if self._on_handler_error:
                    self._safe(self._on_handler_error, incoming, exc)

    def _safe(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: callback failed", self.client_id)

    # --- API -------------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> Callable[[], None]:
        entry = (topic_filter, qos, handler)
        with self._lock:
            self._subs.append(entry)
        if self.connected.is_set():
            self._client.subscribe(topic_filter, qos=qos)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subs:
                    self._subs.remove(entry)
                still = any(f == topic_filter for f, _, _ in self._subs)
            if not still and self.connected.is_set():
                self._client.unsubscribe(topic_filter)

        return unsubscribe

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                response_topic: str | None = None, correlation: bytes | None = None) -> None:
        """Queue a publish; paho sends it now or after reconnecting. Never blocks."""
        properties = None
        if response_topic is not None or correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
        self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10) -> PublishResult:
        """Publish QoS 1 and wait for the broker's PUBACK; report its reason code."""
        event, box = threading.Event(), []
        with self._lock:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            self._puback[info.mid] = (event, box)
        if not event.wait(timeout):
            with self._lock:
                self._puback.pop(info.mid, None)
            return PublishResult(False, "no PUBACK (not connected or timed out)")
        reason = box[0]
        return PublishResult(not reason.is_failure, str(reason))

    def reply(self, request: Incoming, payload: bytes) -> None:
        """Answer a request on its response topic with its correlation data."""
        if request.response_topic:
            self.publish(request.response_topic, payload, qos=1, correlation=request.correlation)

    def request(self, topic: str, payload: bytes, response_topic: str, timeout: float = 10) -> Incoming:
        """Publish a request and wait for the reply carrying the same correlation data."""
        correlation = uuid.uuid4().bytes
        event, box = threading.Event(), []
        with self._lock:
            self._pending[correlation] = (event, box)
        try:
            self.publish(topic, payload, qos=1, response_topic=response_topic, correlation=correlation)
            if not event.wait(timeout):
                raise RequestTimeout(f"no reply on {response_topic} within {timeout:g}s")
            return box[0]
        finally:
            with self._lock:
                self._pending.pop(correlation, None)
