"""The store-to-HQ link runs over TLS: edges verify HQ's broker certificate."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from helpers import customer_by, edge_db, wait_until

from lanehub.runtime.mqtt import BrokerSettings, MqttClient


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "2", "-subj", f"/CN={name}", cwd=directory)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=hq-broker", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.cnf", cwd=d)
    return {"cafile": str(d / "ca.crt"), "certfile": str(d / "server.crt"), "keyfile": str(d / "server.key"),
            "other_ca": str(d / "other-ca.crt")}


def connects(settings: BrokerSettings) -> bool:
    client = MqttClient(settings, f"probe-{uuid.uuid4().hex[:6]}")
    client.start()
    try:
        return client.wait_connected(3)
    finally:
        client.stop()


def test_stores_replicate_over_a_tls_hq_link(make_chain, certs):
    chain = make_chain(tls={k: certs[k] for k in ("cafile", "certfile", "keyfile")})
    created = json.loads(chain.hq_cli("customers", "add", "--first-name", "Tee", "--last-name", "Ellis").stdout)
    for store in chain.stores:
        wait_until(lambda s=store: customer_by(edge_db(chain, s), "id", created["id"]), 20, message=f"customer at {store}")
    port, password = chain.hq_broker.port, chain.store_passwords["S001"]
    assert connects(BrokerSettings(port=port, username="S001", password=password, tls_ca=certs["cafile"]))
    # Plain MQTT on the TLS port, or a broker certificate from the wrong CA: no connection.
    assert not connects(BrokerSettings(port=port, username="S001", password=password))
    assert not connects(BrokerSettings(port=port, username="S001", password=password, tls_ca=certs["other_ca"]))
