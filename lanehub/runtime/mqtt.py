"""MQTT transport: the one place lanehub talks to paho-mqtt.

- MQTT 5, TCP_NODELAY on every socket (docs/benchmarks.md: ~88 ms -> ~0.3 ms
  per request/reply through Mosquitto);
- ``subscribe()`` returns its unsubscribe; subscriptions are replayed on
  every reconnect;
- handlers run on paho's network thread and must be quick: services hand
  real work to a ``lanehub.runtime.worker.Worker``. A handler that raises is logged and
  reported through ``on_handler_error``; the loop never dies;
- ``request()`` publishes with an MQTT 5 response topic and correlation data
  and waits for the matching reply, which is intercepted before dispatch so
  a worker blocked on a request cannot deadlock on its own reply;
- a link that cannot connect, or is lost, is logged at WARNING with a plain
  reason (TLS verification failed, not authorized, refused, timed out, DNS...)
  when the reason changes and every ``REMIND_EVERY`` seconds while it lasts,
  and again when it comes back; paho keeps retrying. ``link`` is its state
  now (a ``LinkState``), for /healthz.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from lanehub.protocol import topics

log = logging.getLogger(__name__)

DEFAULT_SESSION_EXPIRY = 7 * 24 * 3600
REMIND_EVERY = 60.0  # seconds: a link that stays down for the same reason is warned about again this often
HANDLER_CACHE = 4096  # topics whose handlers are remembered (a store has a few per lane and device)
CONNECT_TIMEOUT = 5.0  # paho's socket/TLS handshake timeout (its default), named in "timed out" reasons
RECONNECT_FIRST = 0.25  # seconds before the first reconnect attempt; doubled on each failure...
RECONNECT_MAX = 1.0  # ...up to this: a broker that returns is found within a second


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


@dataclass(frozen=True)
class LinkState:
    """A broker link as the transport last saw it. ``since`` (``time.time()``) is
    when it came up or went down (or the client started); ``reason`` is why it is
    down ("connected" while it is up); ``failures`` counts failed attempts since."""

    connected: bool
    since: float
    reason: str
    failures: int = 0


class RequestTimeout(TimeoutError):
    pass


Handler = Callable[[Incoming], object]  # what it returns is ignored (a handler may enqueue and return the Future)


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
        on_taken_over: Callable[[], None] | None = None,
        name: str = "broker",
    ):
        """``on_taken_over``: when given, a client whose session another client with
        the same client id took over stops reconnecting (instead of kicking it back
        off, for ever) and this is called once."""
        self.settings = settings
        self.client_id = client_id
        self.name = name  # what the log lines call the broker: "HQ broker", "store broker"
        self._clean_start = clean_start
        self._session_expiry = session_expiry
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self._on_handler_error = on_handler_error
        self._on_taken_over = on_taken_over
        self.taken_over = False
        self._subs: list[tuple[str, int, Handler]] = []
        # topic -> the handlers whose filters match it, emptied when the subscriptions change:
        # paho's topic_matches_sub costs ~10 us a filter, ~100 us a message for the edge's
        # ten, on the network thread that must keep up with a lane's flood of scans (D48).
        self._handlers_of: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()
        # A waiter: the event set when its one item (the reply, or the PUBACK's reason) is in the list.
        self._pending: dict[bytes, tuple[threading.Event, list[Incoming]]] = {}
        self._puback: dict[int, tuple[threading.Event, list[ReasonCode]]] = {}
        self.connected = threading.Event()
        self._stopping = False
        # Not self._lock: paho calls back (taking self._lock) while holding the locks its publish takes.
        self._stop_lock = threading.Lock()
        self._link = LinkState(False, time.time(), "not started")
        self._connack = False  # a CONNACK (accepted or not) came on the current socket
        self._warned: str | None = None  # the reason last logged at WARNING during this outage
        self._warned_at = 0.0

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        # Back within a second of the broker's return: the first retry after 0.25 s, then
        # doubling to at most 1 s (bench sync --only reconnect; docs/benchmarks.md).
        client.reconnect_delay_set(min_delay=RECONNECT_FIRST, max_delay=RECONNECT_MAX)  # type: ignore[arg-type]
        client.max_inflight_messages_set(100)
        client.connect_timeout = CONNECT_TIMEOUT
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
        client.on_connect_fail = self._connect_failed
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_publish = self._published
        self._client = client

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._link = LinkState(False, time.time(), "connecting")
        try:  # paho's network thread dies for good on a host name it cannot encode
            self.settings.host.encode("idna")
        except UnicodeError as exc:
            self._link = LinkState(False, time.time(), f"invalid host name {self.settings.host!r}: {exc}")
            log.error("%s: cannot connect to %s %r: invalid host name (%s); not retrying", self.client_id,
                      self.name, self.settings.host, exc)
            return
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
        with self._stop_lock:  # from here on publish() sends nothing: ``last`` is the last word
            self._stopping = True
            info = self._client.publish(last[0], last[1], qos=1, retain=True) if last and self.connected.is_set() else None
        if info is not None:
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._link = LinkState(False, time.time(), "stopped")

    @property
    def link(self) -> LinkState:
        """Whether the link is up, since when, and why not (safe from any thread)."""
        return self._link

    def wait_connected(self, timeout: float = 10) -> bool:
        return self.connected.wait(timeout)

    # --- paho callbacks (network thread) --------------------------------------------

    def _socket_open(self, client, userdata, sock) -> None:
        self._connack = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _connect_failed(self, client, userdata) -> None:
        # paho passes no exception, but calls this inside its ``except OSError``:
        # the TCP connect, the TLS handshake or the DNS lookup that failed is current.
        self._link_failed(connect_error_reason(sys.exc_info()[1], self.settings))

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = True
        if reason_code.is_failure:
            # paho then reports a disconnect ("Protocol error") that adds nothing.
            self._link_failed(connack_reason(reason_code, self.settings))
            return
        with self._lock:
            subs = list(self._subs)
        for topic_filter, qos, _ in {(f, q, None) for f, q, _ in subs}:
            client.subscribe(topic_filter, qos=qos)
        was = self._link
        where = f"{self.name} {self.settings.host}:{self.settings.port}"
        if self._warned is not None:
            log.warning("%s: connected to %s after %s down (was: %s)", self.client_id, where,
                        _duration(time.time() - was.since), was.reason)
        else:
            log.info("%s: connected to %s", self.client_id, where)
        self._warned = None
        self._link = LinkState(True, time.time(), "connected")  # after the log line, as for failures
        self.connected.set()
        if self._on_connect_cb:
            self._safe(self._on_connect_cb)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        # A publish_acked waiting on this connection gets no PUBACK on it (a broker
        # that refuses a message drops the connection): tell it now, not at its timeout.
        with self._lock:
            waiting, self._puback = list(self._puback.values()), {}
        for event, _ in waiting:
            event.set()
        if self._stopping:
            pass
        elif was and self._on_taken_over and _session_taken_over(reason_code, flags):
            self.taken_over = True
            self._client.disconnect()  # the socket is closed already: this only ends paho's reconnect loop
            self._link = LinkState(False, time.time(), lost_reason(reason_code, flags, self.settings, self.client_id))
            self._safe(self._on_taken_over)
        elif was:
            reason = lost_reason(reason_code, flags, self.settings, self.client_id)
            log.warning("%s: lost %s %s:%s: %s; reconnecting", self.client_id, self.name,
                        self.settings.host, self.settings.port, reason)
            self._warned, self._warned_at = reason, time.monotonic()
            self._link = LinkState(False, time.time(), reason)
        elif not self._connack:  # the socket opened but the broker never answered the CONNECT
            self._link_failed(no_connack_reason(reason_code, self.settings))
        if self._on_disconnect_cb:
            self._safe(self._on_disconnect_cb)

    def _link_failed(self, reason: str) -> None:
        """A connection attempt failed: record why; warn when the reason is new or
        every REMIND_EVERY seconds while it lasts (paho retries every few seconds)."""
        if self._stopping:
            return
        was = self._link
        since = was.since if not was.connected else time.time()
        state = LinkState(False, since, reason, was.failures + 1)
        where = f"{self.name} {self.settings.host}:{self.settings.port}"
        now = time.monotonic()
        if reason != self._warned:
            log.warning("%s: cannot connect to %s: %s; retrying", self.client_id, where, reason)
            self._warned, self._warned_at = reason, now
        elif now - self._warned_at >= REMIND_EVERY:
            log.warning("%s: still cannot connect to %s (down %s, %d attempts): %s; retrying", self.client_id, where,
                        _duration(time.time() - state.since), state.failures, reason)
            self._warned_at = now
        else:
            log.debug("%s: cannot connect to %s: %s; retrying", self.client_id, where, reason)
        self._link = state  # after the log line: whoever sees the state finds its line written

    def _published(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            waiter = self._puback.pop(mid, None)
        if waiter:
            waiter[1].append(reason_code)
            waiter[0].set()

    def _message(self, client, userdata, msg) -> None:
        # paho re-raises what escapes this callback, and that ends its network loop:
        # nothing a message holds may get out of here.
        try:
            self._dispatch(msg)
        except Exception:
            log.exception("%s: a message could not be dispatched", self.client_id)

    def _dispatch(self, msg) -> None:
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
            handlers = self._handlers_of.get(msg.topic)
            if handlers is None:
                if len(self._handlers_of) >= HANDLER_CACHE:  # many one-off topics (reply names): start again
                    self._handlers_of.clear()
                handlers = self._handlers_of[msg.topic] = [
                    h for f, _, h in self._subs if paho.topic_matches_sub(topics.unshared(f), msg.topic)]
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
            self._handlers_of.clear()
        if self.connected.is_set():
            self._client.subscribe(topic_filter, qos=qos)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subs:
                    self._subs.remove(entry)
                    self._handlers_of.clear()
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
        with self._stop_lock:
            if self._stopping:  # e.g. a status a worker sends while its service stops: after ``last`` it would undo it
                log.debug("%s: stopping, not publishing on %s", self.client_id, topic)
                return
            self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10) -> PublishResult:
        """Publish QoS 1 and wait for the broker's PUBACK; report its reason code. Not
        acknowledged is not "not delivered": paho resends it after a reconnect."""
        event = threading.Event()
        box: list[ReasonCode] = []
        with self._lock:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            self._puback[info.mid] = (event, box)
        if not event.wait(timeout):
            with self._lock:
                self._puback.pop(info.mid, None)
            return PublishResult(False, "no PUBACK (not connected or timed out)")
        if not box:
            return PublishResult(False, "no PUBACK: the connection was lost (the broker may have refused the message)")
        reason = box[0]
        return PublishResult(not reason.is_failure, str(reason))

    def reply(self, request: Incoming, payload: bytes) -> None:
        """Answer a request on its response topic with its correlation data."""
        if request.response_topic:
            self.publish(request.response_topic, payload, qos=1, correlation=request.correlation)

    def request(self, topic: str, payload: bytes, response_topic: str, timeout: float = 10) -> Incoming:
        """Publish a request and wait for the reply carrying the same correlation data."""
        correlation = uuid.uuid4().bytes
        event = threading.Event()
        box: list[Incoming] = []
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


# --- reasons, in words an operator can act on ------------------------------------------------

def connect_error_reason(exc: BaseException | None, settings: BrokerSettings) -> str:
    """Why a TCP connect, DNS lookup or TLS handshake failed (``exc`` from paho's network thread)."""
    tls = bool(settings.tls_ca or settings.tls_cert)
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = (exc.verify_message or str(exc)).rstrip(".")
        if "mismatch" in detail:
            hint = (f"the broker's certificate does not name {settings.host!r}: connect by a name it carries, "
                    "or reissue it with this one")
        elif exc.verify_code in (2, 18, 19, 20, 21):  # issuer unknown, self-signed, not our CA
            hint = "the broker's certificate is not signed by the CA in tls_ca"
        else:
            hint = ""
        return f"TLS verification failed: {detail}" + (f" ({hint})" if hint else "")
    if isinstance(exc, ssl.SSLError):
        detail = exc.reason or str(exc)
        hint = " (does that port speak TLS?)" if detail in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING") else ""
        return f"TLS handshake failed: {detail}{hint}"
    if isinstance(exc, TimeoutError):
        step = "the TLS handshake" if "handshake" in str(exc) else "the connection"
        return f"timed out: no answer to {step} within {CONNECT_TIMEOUT:g} s (host down, or a firewall drops it)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens on that port (is the broker running? is the port right?)"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup of {settings.host!r} failed: {exc.strerror or exc}"
    if isinstance(exc, ConnectionResetError):
        during = " during the TLS handshake (does that port speak TLS?)" if tls else ""
        return f"connection reset by the broker{during}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN):
        return f"unreachable: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}"
    return f"cannot connect: {exc}" if exc else "cannot connect (paho gave no detail)"


NOT_AUTHORIZED = {134, 135, 138, 140}  # bad user name or password, not authorized, banned, bad auth method


def connack_reason(reason_code, settings: BrokerSettings) -> str:
    """Why the broker refused the CONNECT (its CONNACK reason code)."""
    if getattr(reason_code, "value", None) in NOT_AUTHORIZED:
        who = f"user {settings.username!r}" if settings.username else "an anonymous client"
        return (f"not authorized: the broker refused {who} ({reason_code}): check the username and password "
                "(and the broker's password file and ACL)")
    return f"refused by the broker: {reason_code}"


def no_connack_reason(reason_code, settings: BrokerSettings) -> str:
    """The socket opened, but the broker closed it (or went silent) before its CONNACK."""
    if str(reason_code) == "Keep alive timeout":
        return f"no answer to the MQTT CONNECT within {settings.keepalive} s (is that an MQTT port?)"
    hint = "" if settings.tls_ca or settings.tls_cert else " (a TLS port reached without tls_ca set?)"
    return f"the broker closed the connection before answering the MQTT CONNECT{hint}"


def _session_taken_over(reason_code, flags) -> bool:
    return getattr(flags, "is_disconnect_packet_from_server", False) and str(reason_code) == "Session taken over"


def lost_reason(reason_code, flags, settings: BrokerSettings, client_id: str) -> str:
    """Why an established link dropped."""
    if getattr(flags, "is_disconnect_packet_from_server", False):
        if str(reason_code) == "Session taken over":
            return f"the broker disconnected us: another client connected with client id {client_id!r}"
        return f"the broker disconnected us: {reason_code}"
    if str(reason_code) == "Keep alive timeout":
        return f"no traffic from the broker within the keepalive ({settings.keepalive} s)"
    if str(reason_code) == "Unspecified error":  # paho's MQTT_ERR_CONN_LOST
        return "connection lost: the broker went away or the network dropped"
    return f"connection lost ({reason_code})"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
