"""The roles without booting a box: the playbooks pass a syntax check and
ansible-lint (production profile); the roles' templates, rendered by Ansible
itself, are accepted by the real programs (Mosquitto under a Debian-style main
configuration, lanehub's config loaders, systemd-analyze, sh); the store
broker's password tool is idempotent. tests/test_provisioning.py applies the
playbooks for real to booted Debian boxes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until

from lanehub.chain.mosquitto import free_port, mosquitto_binary, port_open
from lanehub.runtime.config import load

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"

pytestmark = pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed (make test installs it)")


def ansible(*args: str, cwd=ANSIBLE, timeout=300) -> subprocess.CompletedProcess:
    env = os.environ | {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                         "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("playbook", ["edge.yml", "hq.yml"])
def test_playbooks_pass_the_syntax_check(playbook):
    result = ansible(str(PLAYBOOK), "--syntax-check", "-i", "inventory.example.yml", playbook)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_is_clean():
    result = ansible(str(BIN / "ansible-lint"), "--profile", "production", "edge.yml", "hq.yml", "tests/render.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    ports = {"store_port": free_port(), "hq_port": free_port()}
    extra = {"render_dir": str(out), "render_user": os.environ.get("USER", "root"), "source_dir": str(ROOT),
             "venv": str(BIN.parent), **ports}
    result = ansible(str(PLAYBOOK), "-i", "localhost,", "tests/render.yml", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (out / "certs").mkdir()
    for args in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                  "-subj", "/CN=test CA"],
                 ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
                 ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                  "-out", "server.crt"]):
        subprocess.run(["openssl", *args], cwd=out / "certs", check=True, capture_output=True)
    return out, ports


USERS_TOOL = ANSIBLE / "roles" / "mosquitto" / "files" / "mosquitto-users.py"
STORE_USERS = {"lanehub-edge": "edge-secret-0001", "lanehub-devices": "devices-secret-1", "pos": "pos-secret-00001"}


def sync_users(path: Path, users: dict[str, str]) -> str:
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout.strip()
    result = subprocess.run([sys.executable, str(USERS_TOOL), str(path), group], input=json.dumps(users),
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def debian_style(drop_in: Path, out: Path, name: str) -> Path:
    """A main file like Debian's /etc/mosquitto/mosquitto.conf, reading the drop-in from its own conf.d."""
    conf_d = out / f"conf.d-{name}"
    conf_d.mkdir(exist_ok=True)
    shutil.copy(drop_in, conf_d / "lanehub.conf")
    (out / f"{name}-data").mkdir(exist_ok=True)
    main = out / f"mosquitto-main-{name}.conf"
    main.write_text(f"pid_file {out}/{name}.pid\npersistence true\npersistence_location {out}/{name}-data/\n"
                    f"log_dest stdout\ninclude_dir {conf_d}\n"
                    + (f"user {os.environ.get('USER', 'root')}\n" if os.geteuid() == 0 else ""))
    return main


def test_the_store_password_tool_writes_hashes_only_and_only_when_something_changed(tmp_path):
    passwd = tmp_path / "passwd"
    assert sync_users(passwd, STORE_USERS) == "changed"
    text = passwd.read_text()
    assert "edge-secret-0001" not in text and text.count("$7$101$") == 3
    assert oct(passwd.stat().st_mode & 0o777) == "0o640"
    assert sync_users(passwd, STORE_USERS) == "unchanged" and passwd.read_text() == text
    assert sync_users(passwd, STORE_USERS | {"pos": "a-new-one"}) == "changed"
    assert sync_users(passwd, {"lanehub-edge": "edge-secret-0001"}) == "changed"
    assert passwd.read_text().count("\n") == 1


def test_the_certificate_names_what_stores_and_hq_itself_connect_to(rendered):
    out, _ = rendered
    assert (out / "server.ext").read_text().strip() == (
        "subjectAltName=DNS:hq.example.com,IP:203.0.113.7,DNS:localhost,IP:127.0.0.1")


def test_the_operator_cli_is_a_valid_shell_script_that_runs_as_the_service_user(rendered):
    out, _ = rendered
    script = out / "units" / "lanehub-cli.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "runuser -u" in text and "LANEHUB_CONFIG_DIR=" in text


def start_broker(conf: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 10, message="mosquitto to listen")
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, proc.stdout.read().decode()
    return proc


def test_the_rendered_store_broker_takes_its_users_and_enforces_the_acl(rendered, mqtt):
    out, ports = rendered
    # As the role does: the users' hashes written by the role's tool, the
    # drop-in read by a Debian-style main file (which sets persistence itself).
    sync_users(out / "store.passwd", STORE_USERS)
    broker = start_broker(debian_style(out / "mosquitto-store.conf", out, "store"), ports["store_port"])
    try:
        from lanehub.runtime.mqtt import BrokerSettings, MqttClient

        anonymous = MqttClient(BrokerSettings(port=ports["store_port"]), "anon")
        anonymous.start()
        assert not anonymous.wait_connected(2), "an anonymous client was let in"
        anonymous.stop()
        edge = mqtt(ports["store_port"], "lanehub-edge", "edge-secret-0001")
        devices = mqtt(ports["store_port"], "lanehub-devices", "devices-secret-1")
        seen = []
        edge.subscribe("lanehub/S001/#", lambda m: seen.append(m.topic))
        import time

        time.sleep(0.3)
        devices.publish("lanehub/S001/lane/L1/scan", b"{}")  # allowed
        devices.publish("lanehub/S001/edge/status", b"{}")  # not a device's topic
        devices.publish("lanehub/S002/lane/L1/scan", b"{}")  # another store's
        wait_until(lambda: "lanehub/S001/lane/L1/scan" in seen, 5, message="the allowed publish")
        time.sleep(0.5)
        assert seen == ["lanehub/S001/lane/L1/scan"]
    finally:
        broker.kill()
        broker.wait()


def test_the_rendered_hq_broker_starts_with_tls(rendered):
    out, ports = rendered
    (out / "hq-broker" / "passwd").write_text("")
    (out / "hq-broker" / "acl").write_text("")
    broker = start_broker(debian_style(out / "mosquitto-hq.conf", out, "hq"), ports["hq_port"])
    try:
        tls = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ports['hq_port']}", "-CAfile",
                              str(out / "certs" / "ca.crt")], input="", capture_output=True, text=True, timeout=20)
        assert "Verify return code: 0 (ok)" in tls.stdout
    finally:
        broker.kill()
        broker.wait()


def test_the_rendered_lanehub_configs_load(rendered):
    from devices.config import SCHEMA as DEVICES
    from edge.config import SCHEMA as EDGE
    from hq.config import SCHEMA as HQ

    out, _ = rendered
    edge = load(out / "etc" / "edge.toml", EDGE, environ={})
    assert (edge["store"]["id"], edge["hq"]["port"], edge["broker"]["username"]) == ("S001", 8883, "lanehub-edge")
    assert edge["hq"]["password"] == "store-secret-0001"
    # Lanes print on their own printers (P1 on L1, P2 on L2); L3 borrows P2; no store fallback.
    assert (edge["lane"], edge["store"]["printer"]) == ({"L3": {"printer": "P2"}}, "")
    assert (edge["mail"]["host"], edge["mail"]["port"], edge["mail"]["password"]) == ("smtp.example.com", 587, "mail-secret-1")
    devices = load(out / "etc" / "devices.toml", DEVICES, environ={})
    assert devices["device"]["P1"]["host"] == "192.168.10.50" and devices["device"]["SC1"]["lane"] == "L1"
    assert devices["broker"]["password"] == "devices-secret-1"
    hq = load(out / "etc" / "hq.toml", HQ, environ={})
    assert hq["broker"]["acl_file"].endswith("hq-broker/acl") and hq["codes"]["prefix"] == "CUST-"
    pos = hq["import"]["customers"]
    assert pos["columns"] == {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name", "C/P": "postcode"}
    assert (pos["owned"], pos["export_interval"], pos["deactivate_missing"]) == (["first_name", "last_name", "postcode"],
                                                                                30.0, True)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["lanehub-edge.service", "lanehub-devices.service", "lanehub-hq.service",
                                  "lanehub-import-customers.service", "lanehub-import-customers.timer"])
def test_the_rendered_units_pass_systemd_analyze_verify(rendered, unit):
    out, _ = rendered
    path = out / "units" / unit
    text = path.read_text()
    if unit.endswith(".service"):
        assert "NoNewPrivileges=" in text and "ProtectSystem=strict" in text
        assert "Restart=on-failure" in text or "Type=oneshot" in text
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if unit in line and "mosquitto.service" not in line]
    assert result.returncode == 0 or not problems, result.stdout + result.stderr


def test_a_scheduled_import_keeps_its_source_out_of_the_unit(rendered):
    out, _ = rendered
    unit = (out / "units" / "lanehub-import-customers.service").read_text()
    assert "pos-secret" not in unit and "${LANEHUB_IMPORT_SOURCE}" in unit
    assert '"--max-deactivate" "50" "--query" "SELECT * FROM clients WHERE deleted = 0 AND name NOT LIKE \'x%%\'"' in unit
    env = (out / "etc" / "import-customers.env").read_text()
    assert "LANEHUB_IMPORT_SOURCE=postgresql+psycopg://lanehub:pos-secret@pos-db/pos" in env
    assert "OnCalendar=*-*-* 03:00:00" in (out / "units" / "lanehub-import-customers.timer").read_text()
    # The HQ service writes the export drop: its sandbox lets it.
    assert "ReadWritePaths=" in (hq := (out / "units" / "lanehub-hq.service").read_text())
    assert " /var/spool/lanehub/pos" in hq.split("ReadWritePaths=")[1].splitlines()[0]
