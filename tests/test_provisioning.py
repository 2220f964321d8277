"""docs/operations.md, followed for real: bare Debian 12 boxes (debootstrap,
booted by systemd-nspawn, reached over SSH) provisioned with ansible/hq.yml and
ansible/edge.yml, an inventory and a Vault file laid out as the runbook shows,
stores registered with `lanehub hq store add` on the HQ box. Then a product
imported at HQ is priced by a scan at each store, and the receipt reaches the
network printer the inventory names (a real TCP listener on this machine).

The boxes: tests/boxes.py. The base file system is cached outside the clone
(LANEHUB_TEST_CACHE, /var/cache/lanehub-test by default). `make test` runs this
module beside the rest of the suite.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boxes
import pytest
import route_walk
from fake_printer import FakePrinter
from helpers import wait_until
from shop import PRODUCTS_CSV, Lane

from lanehub.protocol import topics
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
STORES = {"S001": ("store-s001", 11), "S002": ("store-s002", 12)}

pytestmark = [
    pytest.mark.provisioning,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(os.geteuid() != 0, reason="booting boxes with systemd-nspawn needs root"),
    pytest.mark.skipif(bool(boxes.missing_tools()), reason=f"missing: {', '.join(boxes.missing_tools())} (make test installs them)"),
]


@dataclass
class Site:
    work: Path
    network: boxes.Network
    hq: boxes.Box
    edges: dict[str, boxes.Box]
    printer: FakePrinter
    secrets: dict[str, str]
    runs: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    admin_password: str = ""

    def pos_client(self, store: str) -> MqttClient:
        client = MqttClient(BrokerSettings(host=self.edges[store].ip, port=1883, username="pos",
                                           password=self.secrets[f"vault_mosquitto_pos_password_{store.lower()}"]),
                            f"test-pos-{store}-{secrets.token_hex(3)}")
        client.start()
        assert client.wait_connected(10), f"the pos user could not connect to {store}'s store broker"
        return client


def inventory(site_net: boxes.Network, printer_port: int, work: Path) -> str:
    """The inventory an IT person writes (docs/operations.md), with this run's addresses."""
    edges = "\n".join(f"""\
        {name}:
          ansible_host: {site_net.address(octet)}
          lanehub_store_id: {store}
          lanehub_store_name: "Lanehub Market {store}"
          lanehub_hq_password: "{{{{ vault_lanehub_hq_password_{store.lower()} }}}}"
          mosquitto_store_users:
            - {{name: lanehub-edge, password: "{{{{ vault_mosquitto_edge_password_{store.lower()} }}}}"}}
            - {{name: lanehub-devices, password: "{{{{ vault_mosquitto_devices_password_{store.lower()} }}}}"}}
            - {{name: pos, password: "{{{{ vault_mosquitto_pos_password_{store.lower()} }}}}"}}
          lanehub_devices:
            P1: {{profile: epson-tm-t88-network, lane: L1, host: {site_net.gateway}, port: {printer_port}}}"""
                      for store, (name, octet) in STORES.items())
    return f"""\
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: {work}/id_ed25519
    ansible_ssh_common_args: "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    lanehub_tls_dir: {work}/tls-private
    lanehub_wheelhouse_dir: {boxes.CACHE}/wheelhouse
  children:
    hq:
      hosts:
        hq-box:
          ansible_host: {site_net.address(10)}
          lanehub_hq_public_host: {site_net.address(10)}
          lanehub_hq_web_host: 0.0.0.0
          lanehub_hq_broker_password: "{{{{ vault_lanehub_hq_broker_password }}}}"
    edges:
      vars:
        lanehub_hq_host: {site_net.address(10)}
        lanehub_web_host: 0.0.0.0
      hosts:
{edges}
"""


def write_vault(work: Path, values: dict[str, str]) -> None:
    vault = work / "inventory" / "group_vars" / "all" / "vault.yml"
    vault.parent.mkdir(parents=True, exist_ok=True)
    vault.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in sorted(values.items())))
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(work / "vault-password"),
                    str(vault)], check=True, capture_output=True)
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")


def playbook(site: Site, name: str, run: str, *extra: str) -> subprocess.CompletedProcess:
    env = os.environ | {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False", "PATH": f"{BIN}:{os.environ['PATH']}"}
    started = time.monotonic()
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(site.work / "inventory" / "inventory.yml"),
                             "--vault-password-file", str(site.work / "vault-password"), name, *extra],
                            cwd=ANSIBLE, capture_output=True, text=True, timeout=1200, env=env)
    site.seconds[run] = time.monotonic() - started
    site.runs[run] = result
    (site.work / f"{run}.log").write_text(result.stdout + result.stderr)
    return result


def recap(result: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    """PLAY RECAP: {host: {ok, changed, failed, ...}}."""
    hosts = {}
    for line in result.stdout.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            hosts[match[1]] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
    return hosts


def must_pass(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        pytest.fail(f"{what} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")


def register_store(hq: boxes.Box, store: str) -> str:
    """Runbook: `lanehub hq store add STORE` on the HQ box prints the store's password once."""
    out = hq.ssh(f"lanehub hq store add {store}").stdout
    return re.search(r'^password = "([^"]+)"', out, re.M)[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    work = tmp_path_factory.mktemp("boxes")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "id_ed25519")], check=True)
    (work / "vault-password").write_text(secrets.token_urlsafe(24) + "\n")
    tarball = boxes.base_tarball()
    network = boxes.Network().start()
    printer = FakePrinter(host=network.gateway)
    roots = boxes.mount_tmpfs(work / "roots")
    hq = boxes.Box("hq", network, 10, roots, work / "id_ed25519")
    edges = {store: boxes.Box(name.removeprefix("store-"), network, octet, roots, work / "id_ed25519")
             for store, (name, octet) in STORES.items()}
    site = Site(work, network, hq, edges, printer, {"vault_lanehub_hq_broker_password": secrets.token_urlsafe(18)})
    for store in STORES:
        for user in ("edge", "devices", "pos"):
            site.secrets[f"vault_mosquitto_{user}_password_{store.lower()}"] = secrets.token_urlsafe(18)
    try:
        for box in (hq, *edges.values()):
            box.create(tarball).boot()
        (work / "inventory").mkdir()
        (work / "inventory" / "inventory.yml").write_text(inventory(network, printer.port, work))
        # First run of HQ with only HQ's secret in the Vault; --diff as the runbook suggests.
        write_vault(work, site.secrets)
        must_pass(playbook(site, "hq.yml", "hq-1", "--diff"), "the first run of hq.yml")
        for store in STORES:
            site.secrets[f"vault_lanehub_hq_password_{store.lower()}"] = register_store(hq, store)
        write_vault(work, site.secrets)
        # HQ's rerun and the stores' first run touch different boxes: side by side.
        with ThreadPoolExecutor(2) as pool:
            hq_again = pool.submit(playbook, site, "hq.yml", "hq-2")
            edges_first = pool.submit(playbook, site, "edge.yml", "edge-1", "--diff")
            must_pass(edges_first.result(), "the first run of edge.yml")
            must_pass(hq_again.result(), "the second run of hq.yml")
        must_pass(playbook(site, "edge.yml", "edge-2"), "the second run of edge.yml")
        site.admin_password = secrets.token_urlsafe(12)
        hq.ssh("lanehub hq users add admin --role admin --password-stdin", input=site.admin_password + "\n")
        yield site
    finally:
        timings = ", ".join(f"{run} {seconds:.0f} s" for run, seconds in site.seconds.items())
        # Past pytest's capture: make test shows this log, and the timings belong in it.
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"\nprovisioning runs: {timings}")
        for box in (hq, *edges.values()):
            if box.proc is not None and box.proc.poll() is None:
                print(f"----- {box.name}: lanehub journal -----")
                print(box.ssh("journalctl -u 'lanehub-*' -u mosquitto --no-pager -n 40", check=False).stdout)
            box.stop()
        printer.close()
        network.stop()
        boxes.unmount(roots)


def test_each_playbook_provisions_bare_boxes_in_one_run(site):
    for run, hosts in (("hq-1", ["hq-box"]), ("edge-1", ["store-s001", "store-s002"])):
        result = site.runs[run]
        assert result.returncode == 0
        summary = recap(result)
        assert sorted(summary) == sorted(hosts), result.stdout[-2000:]
        assert all(summary[host]["failed"] == 0 and summary[host]["unreachable"] == 0 for host in hosts)
        assert all(summary[host]["changed"] > 0 for host in hosts), "a first run on a bare box changes it"


def test_a_second_run_of_each_playbook_changes_nothing(site):
    for run in ("hq-2", "edge-2"):
        summary = recap(site.runs[run])
        changed = {host: counts["changed"] for host, counts in summary.items()}
        assert changed and set(changed.values()) == {0}, site.runs[run].stdout[-5000:]


def test_no_secret_is_printed_by_a_run_even_with_diff(site):
    output = "".join(result.stdout + result.stderr for result in site.runs.values())
    leaked = [name for name, value in site.secrets.items() if value in output]
    assert not leaked, f"printed by ansible-playbook: {leaked}"


def test_the_services_run_and_start_at_boot(site):
    for box, units in [(site.hq, "mosquitto lanehub-hq"), *[(edge, "mosquitto lanehub-edge lanehub-devices")
                                                          for edge in site.edges.values()]]:
        assert box.ssh(f"systemctl is-active {units}").stdout.split() == ["active"] * len(units.split())
        assert box.ssh(f"systemctl is-enabled {units}").stdout.split() == ["enabled"] * len(units.split())


def test_store_passwords_exist_on_the_store_box_only_as_hashes_and_in_the_services_configs(site):
    for store, box in site.edges.items():
        for user in ("edge", "devices", "pos"):
            password = site.secrets[f"vault_mosquitto_{user}_password_{store.lower()}"]
            holders = box.ssh(f"grep -rlF -- '{password}' /etc /var/lib /opt || true").stdout.split()
            allowed = {"edge": ["/etc/lanehub/edge.toml"], "devices": ["/etc/lanehub/devices.toml"], "pos": []}[user]
            assert sorted(holders) == allowed, (store, user, holders)
        modes = box.ssh("stat -c '%n %U:%G %a' /etc/lanehub/edge.toml /etc/mosquitto/lanehub.passwd").stdout.splitlines()
        assert modes == ["/etc/lanehub/edge.toml root:lanehub 640", "/etc/mosquitto/lanehub.passwd root:mosquitto 640"]


def test_the_operator_cli_writes_hqs_broker_files_as_the_service_user(site):
    # `lanehub hq store add` ran as root on the box (the fixture): the files keep their owner.
    listing = site.hq.ssh("stat -c '%n %U:%G %a' /etc/mosquitto/lanehub/passwd /etc/mosquitto/lanehub/acl").stdout
    assert listing.splitlines() == ["/etc/mosquitto/lanehub/passwd lanehub:mosquitto 640",
                                    "/etc/mosquitto/lanehub/acl lanehub:mosquitto 640"]
    stores = site.hq.ssh("lanehub hq store list").stdout
    assert "S001" in stores and "S002" in stores


def test_each_edge_reports_its_hq_link_up_over_tls(site):
    for store in STORES:
        client = site.pos_client(store)
        statuses = []
        client.subscribe(topics.edge_status(store), lambda m: statuses.append(json.loads(m.payload)))
        try:
            wait_until(lambda: statuses and statuses[-1].get("hq_link") == "up", 60,
                       message=f"{store}'s retained edge status to say hq_link up")
        finally:
            client.stop()
        config = site.edges[store].ssh("grep -A5 '^\\[hq\\]' /etc/lanehub/edge.toml").stdout
        assert f'username = "{store}"' in config and "port = 8883" in config and "tls_ca" in config
    # The HQ broker answers TLS only, with a certificate for the address the stores use.
    verify = site.hq.ssh(f"echo | openssl s_client -connect 127.0.0.1:8883 -verify_ip {site.hq.ip} "
                         "-CAfile /etc/mosquitto/certs/ca.crt 2>&1 || true").stdout
    assert "Verify return code: 0 (ok)" in verify, verify[-1500:]


def test_a_product_imported_at_hq_is_priced_by_a_scan_and_its_receipt_prints(site):
    csv = site.work / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    # Runbook: files for the lanehub command go where the service user can read them.
    site.hq.copy_in(csv, "/var/lib/lanehub/imports/products.csv")
    site.hq.ssh("chgrp lanehub /var/lib/lanehub/imports/products.csv && chmod 0640 /var/lib/lanehub/imports/products.csv")
    out = site.hq.ssh("lanehub hq products import /var/lib/lanehub/imports/products.csv").stdout
    assert "added 3" in out or "unchanged" in out, out
    for store in STORES:
        client = site.pos_client(store)
        try:
            lane = Lane(client, store, "L1")
            time.sleep(0.5)
            state = wait_until(lambda: _priced(lane), 60, interval=1, message=f"MILK to be priced at {store}")
            assert state["total"] == "1.20", state
            printed_before = len(site.printer.printed)
            closed = lane.cmd("close")
            assert closed["status"] == "closed", closed
            wait_until(lambda: len(site.printer.printed) > printed_before, 30,
                       message=f"{store}'s receipt at the network printer")
            receipt = site.printer.printed[-1].decode("cp437", "replace")
            assert f"Lanehub Market {store}" in receipt and "Whole milk" in receipt
        finally:
            client.stop()


def _priced(lane: Lane) -> dict | None:
    state = lane.scan("8410000000011")
    if state.get("lines"):
        return state
    return None


def test_the_pages_answer_every_route_without_a_server_error(site):
    pages = {}
    for url, box, name in [(f"http://{site.hq.ip}:8800", site.hq, "hq"),
                           *[(f"http://{edge.ip}:8801", edge, "edge") for edge in site.edges.values()]]:
        # The routes as the installed package on the box sees them.
        python = ["ssh", "-i", str(box.key), *boxes.SSH_OPTIONS, f"root@{box.ip}", "/opt/lanehub/venv/bin/python"]
        routes = route_walk.list_routes(python, name)
        paths, _ = route_walk.expand(routes, {})
        opener = route_walk.login(url, "admin", site.admin_password) if name == "hq" else _store_login(site, url)
        pages[url] = route_walk.walk(url, opener, paths)
        assert len(pages[url]) > 5
    errors = {url: {path: status for path, status in statuses.items() if status >= 500}
              for url, statuses in pages.items()}
    assert not any(errors.values()), errors
    logged_in = {url: sum(1 for status in statuses.values() if status == 200) for url, statuses in pages.items()}
    assert all(count > 5 for count in logged_in.values()), (logged_in, pages)


def _store_login(site: Site, url: str):
    # Users are HQ's and replicate to every store: the admin made at HQ logs in at the store.
    return wait_until(lambda: _try_login(url, site.admin_password), 60, interval=1, message=f"logging in at {url}")


def _try_login(url: str, password: str):
    try:
        return route_walk.login(url, "admin", password)
    except (RuntimeError, OSError):
        return None


def test_healthz_reports_every_box_healthy(site):
    for url in [f"http://{site.hq.ip}:8800", *[f"http://{edge.ip}:8801" for edge in site.edges.values()]]:
        status, _, body = route_walk.get(route_walk.opener_for(), url + "/healthz")
        health = json.loads(body)
        assert status == 200, health
        assert health["broker_links"] and all(link["connected"] for link in health["broker_links"].values()), health


def test_an_upgrade_installs_the_new_wheel_restarts_and_keeps_the_stores_data(site, tmp_path):
    """Runbook section 7 on one store: a newer checkout, the playbook again."""
    box = site.edges["S001"]
    sales = "/opt/lanehub/venv/bin/python -c \"import sqlite3; print(sqlite3.connect('/var/lib/lanehub/edge.db')" \
            ".execute('SELECT count(*) FROM sales').fetchone()[0])\""
    before = int(box.ssh(f"runuser -u lanehub -- {sales}").stdout)
    assert before >= 1  # the sale closed in the test above
    newer = tmp_path / "lanehub"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (newer / name).parent.mkdir(parents=True, exist_ok=True)
            (newer / name).write_bytes((ROOT / name).read_bytes())
    # The dependencies' wheels as the control node already has them (no index needed).
    shutil.copytree(boxes.CACHE / "wheelhouse", tmp_path / "wheelhouse", ignore=shutil.ignore_patterns("lanehub-*"))
    pyproject = newer / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = "[^"]+"', 'version = "99.0.0"', pyproject.read_text(), count=1, flags=re.M))
    result = playbook(site, "edge.yml", "upgrade", "--limit", "store-s001", "-e", f"lanehub_build_source={newer}",
                      "-e", f"lanehub_wheelhouse_dir={tmp_path / 'wheelhouse'}")
    must_pass(result, "edge.yml with a newer checkout")
    assert "RUNNING HANDLER [lanehub : Restart lanehub]" in result.stdout
    assert "Version: 99.0.0" in box.ssh("/opt/lanehub/venv/bin/pip show lanehub").stdout
    assert box.ssh("systemctl is-active lanehub-edge lanehub-devices").stdout.split() == ["active", "active"]
    assert int(box.ssh(f"runuser -u lanehub -- {sales}").stdout) == before
    status, _, body = wait_until(lambda: _healthy(f"http://{box.ip}:8801/healthz"), 60, interval=1,
                                 message="the upgraded store's /healthz to answer 200")
    assert json.loads(body)["broker_links"]["hq_broker"]["connected"]


def _healthy(url: str):
    try:
        answer = route_walk.get(route_walk.opener_for(), url, timeout=5)
    except OSError:
        return None
    return answer if answer[0] == 200 else None
