"""A broker link that cannot connect says why, at WARNING, once per reason.

Real Mosquitto brokers (with users, with TLS) and the real transport in this
process; the logs are read with caplog. The field case, HQ whose broker
certificate does not name the host it connects to, is also run as a real
`lanehub hq run` process: its log and its /healthz say so.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid

import pytest
from helpers import kill_chain, wait_until
from test_tls_link import make_ca, openssl

import lanehub.runtime.mqtt
from lanehub.chain.local import Chain
from lanehub.chain.mosquitto import free_port
from lanehub.runtime.mqtt import BrokerSettings, LinkState, MqttClient

PASSWORD = "right password"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, another CA, and two server certificates from the first: one naming
    127.0.0.1 only (so "localhost" does not match), one naming hq.example only."""
    d = tmp_path_factory.mktemp("link-certs")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    for name, san in (("ip-only", "IP:127.0.0.1"), ("other-name", "DNS:hq.example")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", "/CN=hq-broker", cwd=d)
        (d / f"{name}.cnf").write_text(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.cnf", cwd=d)
    return {"ca": str(d / "ca.crt"), "other_ca": str(d / "other-ca.crt"),
            **{f"{n}_{part}": str(d / f"{n}.{ext}") for n in ("ip-only", "other-name")
               for part, ext in (("cert", "crt"), ("key", "key"))}}


@pytest.fixture
def link(caplog):
    """Start an ``MqttClient`` that logs into caplog; stopped afterwards."""
    caplog.set_level(logging.INFO, logger="lanehub.runtime.mqtt")
    clients: list[MqttClient] = []

    def start(**settings) -> MqttClient:
        client = MqttClient(BrokerSettings(**settings), f"probe-{uuid.uuid4().hex[:6]}", name="test broker")
        clients.append(client)
        client.start()
        return client

    yield start
    for client in clients:
        client.stop()


def warnings_of(caplog, client: MqttClient) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.getMessage().startswith(f"{client.client_id}: ")]


def failed_attempts(client: MqttClient, n: int, timeout: float = 20) -> LinkState:
    """Wait until paho has retried: the link stays down with ``n`` failed attempts."""
    return wait_until(lambda: client.link if client.link.failures >= n else None, timeout,
                      message=f"{n} failed attempts (link: {client.link})")


def test_a_wrong_password_is_not_authorized_warned_once_while_paho_retries(mosquitto, link, caplog):
    broker = mosquitto(users={"shop": PASSWORD})
    client = link(port=broker.port, username="shop", password="wrong")
    state = failed_attempts(client, 3)
    assert not state.connected and not client.connected.is_set()
    assert state.reason.startswith("not authorized: the broker refused user 'shop' (Not authorized)"), state
    assert warnings_of(caplog, client) == [
        f"{client.client_id}: cannot connect to test broker 127.0.0.1:{broker.port}: {state.reason}; retrying"]

    anonymous = link(port=broker.port)
    assert "refused an anonymous client" in failed_attempts(anonymous, 1).reason


def test_a_link_down_for_long_is_warned_about_again(mosquitto, link, caplog, monkeypatch):
    monkeypatch.setattr(lanehub.runtime.mqtt, "REMIND_EVERY", 2.0)
    client = link(port=free_port())
    wait_until(lambda: any("still cannot connect" in w for w in warnings_of(caplog, client)), 20,
               message="a reminder")
    first, reminder = warnings_of(caplog, client)[:2]
    assert "cannot connect to test broker" in first and "connection refused" in first
    assert reminder.startswith(f"{client.client_id}: still cannot connect to test broker 127.0.0.1:")
    assert "attempts): connection refused: nothing listens on that port" in reminder


def test_tls_verification_failures_name_the_cause(mosquitto, link, caplog, certs):
    broker = mosquitto(users={"shop": PASSWORD}, tls={"cafile": certs["ca"], "certfile": certs["ip-only_cert"],
                                                      "keyfile": certs["ip-only_key"]})
    good = link(port=broker.port, username="shop", password=PASSWORD, tls_ca=certs["ca"])
    assert good.wait_connected(10), good.link  # the certificate is fine for the name it carries

    wrong_name = link(host="localhost", port=broker.port, username="shop", password=PASSWORD, tls_ca=certs["ca"])
    reason = failed_attempts(wrong_name, 1).reason
    assert reason.startswith("TLS verification failed: Hostname mismatch, certificate is not valid for 'localhost'"), reason
    assert "does not name 'localhost'" in reason
    assert warnings_of(caplog, wrong_name) == [
        f"{wrong_name.client_id}: cannot connect to test broker localhost:{broker.port}: {reason}; retrying"]

    wrong_ca = link(port=broker.port, username="shop", password=PASSWORD, tls_ca=certs["other_ca"])
    reason = failed_attempts(wrong_ca, 1).reason
    assert reason.startswith("TLS verification failed: self-signed certificate in certificate chain"), reason
    assert "not signed by the CA in tls_ca" in reason

    no_tls = link(port=broker.port, username="shop", password=PASSWORD)
    reason = failed_attempts(no_tls, 1).reason
    assert reason == "the broker closed the connection before answering the MQTT CONNECT (a TLS port reached without tls_ca set?)"


def test_nothing_listening_is_refused_and_a_lost_broker_is_warned_and_its_return_too(mosquitto, link, caplog):
    refused = link(port=free_port())
    assert failed_attempts(refused, 1).reason.startswith("connection refused: nothing listens on that port")
    assert "nothing listens on that port" in warnings_of(caplog, refused)[0]

    unknown = link(host="no-such-broker.invalid", port=1883)
    assert failed_attempts(unknown, 1).reason.startswith("DNS lookup of 'no-such-broker.invalid' failed: ")

    broker = mosquitto(users={"shop": PASSWORD})
    client = link(port=broker.port, username="shop", password=PASSWORD)
    assert client.wait_connected(10)
    up = client.link
    assert up.connected and up.reason == "connected" and up.failures == 0
    assert not warnings_of(caplog, client)  # a link that simply connects warns about nothing
    assert f"{client.client_id}: connected to test broker 127.0.0.1:{broker.port}" in caplog.messages

    broker.kill()
    wait_until(lambda: not client.link.connected, 10, message="the link down")
    assert client.link.since >= up.since
    failed_attempts(client, 2)
    where = f"test broker 127.0.0.1:{broker.port}"
    assert warnings_of(caplog, client) == [
        f"{client.client_id}: lost {where}: connection lost: the broker went away or the network dropped; reconnecting",
        f"{client.client_id}: cannot connect to {where}: {client.link.reason}; retrying",
    ]
    broker.start()
    assert client.wait_connected(15)
    back = warnings_of(caplog, client)[-1]
    assert back.startswith(f"{client.client_id}: connected to {where} after ") and "was: connection refused" in back
    assert client.link.connected and client.link.since > up.since


def test_hq_whose_broker_certificate_does_not_name_its_host_says_so_in_its_log_and_healthz(tmp_path, certs):
    """The field case: TLS verification failed, and `lanehub hq run` said only "HQ running"."""
    chain = Chain(tmp_path / "chain", ("S001",), tls={"cafile": certs["ca"], "certfile": certs["other-name_cert"],
                                                      "keyfile": certs["other-name_key"]})
    try:
        chain.start_brokers()
        chain.register_stores()
        chain.hq.start()
        port = chain.hq_broker.port
        expected = (f"lanehub-hq: cannot connect to HQ broker 127.0.0.1:{port}: TLS verification failed: "
                    "IP address mismatch, certificate is not valid for '127.0.0.1'")
        assert chain.hq.wait_for_log(expected, 20), chain.hq.tail()
        line = next(l for l in chain.hq.tail(100).splitlines() if expected in l)
        assert "WARNING" in line and line.endswith("; retrying"), line
        status, body = wait_until(lambda: healthz(chain.web_ports["hq"]), 20, message="HQ's /healthz")
        assert status == 503 and body["status"] == "down", body
        assert body["broker_links"]["hq_broker"]["connected"] is False
        assert body["broker_links"]["hq_broker"]["reason"].startswith("TLS verification failed: IP address mismatch")
        time.sleep(6)  # paho retries every few seconds: the same reason is not logged again
        assert chain.hq.tail(400).count("cannot connect to HQ broker") == 1, chain.hq.tail(400)
    finally:
        kill_chain(chain)


def healthz(port: int) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:  # the page is not listening yet
        return None
