"""The built wheel is lanehub, whole: installed in a fresh venv outside the
source tree (no `-e`, no checkout on sys.path), it ships every template, static
file and device profile, and a real HQ and a real edge run from it, against
real Mosquitto brokers, and render every GET page of both sites, logged in,
over HTTP. The rest of the suite installs editable, which reads templates and
profiles from the checkout and so cannot see a file the wheel leaves out.

The venv gets the wheel's dependencies from the package index (pip's cache
makes reruns fast) and no extras, so it also shows that HQ and the edge run
without evdev, and what `lanehub devices run` says when a HID device needs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers import db_query, db_value, edge_db, edge_ready, hq_db, kill_chain, wait_until
from route_walk import expand, list_routes, login, walk
from shop import PRODUCTS_CSV, Lane

from lanehub.chain.local import PASSWORD_RE, Chain
from lanehub.chain.processes import ServiceProcess
from lanehub.runtime.config import dump_toml

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "wheel-test-password"
# Build from a copy of the work tree (uncommitted edits included): no stale
# build/ or *.egg-info of an earlier build can put back a file the config drops.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                     ".pytest_cache", ".hypothesis", "*.db", "*.db-wal", "*.db-shm", "demo-data",
                                     "bench-results", "tls-private", "node_modules", ".pytest-provisioning",
                                     ".provisioning-test.log", ".ansible")

# GET rules whose URL arguments the walk cannot fill, with the reason; keep it empty
# unless a page truly needs something a test box cannot have.
UNWALKABLE: dict[str, dict[str, str]] = {"hq": {}, "edge": {}}
# The pages that answer something other than 200 when all is well.
NOT_200 = {"/": 302}  # home: a redirect to /customers/

pytestmark = pytest.mark.timeout(600)  # a cold pip cache downloads every dependency once


def clean_env() -> dict[str, str]:
    """The environment for the wheel's processes: nothing that points Python at the checkout."""
    # Bytecode is written: the venv is installed with --no-compile (quicker), and
    # without it every `lanehub` would compile all it imports afresh.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE")}
    return env | {"PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"}


def check_run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class Wheel:
    def __init__(self, path: Path, venv: Path, scratch: Path):
        self.path, self.venv, self.scratch = path, venv, scratch
        self.python = venv / "bin" / "python"
        self.lanehub = venv / "bin" / "lanehub"

    def cli(self, *args: str, input: str | None = None, check: bool = True, cwd: Path | None = None):
        """`lanehub ARGS` from the wheel's venv, in a directory outside the source tree."""
        result = subprocess.run([str(self.lanehub), *args], input=input, capture_output=True, text=True, timeout=120,
                                cwd=cwd or self.scratch, env=clean_env())
        if check and result.returncode != 0:
            raise AssertionError(f"lanehub {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result


def copy_source(target: Path) -> None:
    """The checkout's files, as git sees them (tracked, and new ones not ignored): never
    what tests leave in it, e.g. the provisioning test's box file systems, whose FIFOs
    would block a plain copy."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, timeout=60)
    if listed.returncode != 0:  # not a git checkout (an unpacked source tarball)
        shutil.copytree(ROOT, target, ignore=COPY_IGNORE)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Wheel:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT), "the wheel's venv must be outside the source tree"
    source, dist, venv, scratch = base / "src", base / "dist", base / "venv", base / "scratch"
    copy_source(source)
    scratch.mkdir()
    check_run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)], timeout=300)
    [path] = dist.glob("lanehub-*.whl")
    # No pip inside (quicker); this pip installs into it, without extras.
    check_run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    check_run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile",
               str(path)], timeout=540)
    return Wheel(path, venv, scratch)


def test_the_wheel_holds_every_file_of_every_package(wheel):
    """Code, templates (every folder), static files, device profiles and udev rules."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in packages for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    with zipfile.ZipFile(wheel.path) as archive:
        shipped = set(archive.namelist())
    assert expected - shipped == set(), "left out of the wheel: check [tool.setuptools.package-data]"
    assert {"edge/web/templates/store/lanes.html", "hq/web/templates/rates/index.html", "lanehub/web/static/lanehub.css",
            "devices/firmware-config/zebra-ls2208-hid.toml", "devices/firmware-config/udev/99-lanehub.rules"} <= shipped


def test_the_venv_runs_the_installed_wheel_not_the_checkout(wheel):
    out = check_run([str(wheel.python), "-c", "import lanehub, devices.profiles as p; print(lanehub.__file__); print(p.PROFILES_DIR)"],
                    cwd=wheel.scratch, env=clean_env()).stdout.split()
    site_packages = next((wheel.venv / "lib").glob("python3*/site-packages")).resolve()
    assert [Path(p).resolve().is_relative_to(site_packages) for p in out] == [True, True], out
    assert subprocess.run([str(wheel.python), "-c", "import evdev"], capture_output=True, cwd=wheel.scratch,
                          env=clean_env()).returncode != 0, "evdev is an extra (lanehub[devices]), not a dependency"


def test_device_profiles_and_udev_rules_ship_and_a_hid_device_without_evdev_is_one_line(wheel):
    listed = wheel.cli("devices", "profiles").stdout
    for profile in sorted((ROOT / "devices" / "firmware-config").glob("*.toml")):
        assert profile.stem in listed
    assert "up to date" in wheel.cli("devices", "udev", "--check").stdout

    config = wheel.scratch / "hid-devices.toml"
    config.write_text('[store]\nid = "S001"\n\n[broker]\nport = 1\n\n'
                      '[device.SC1]\nprofile = "zebra-ls2208-hid"\nlane = "L1"\n')
    result = wheel.cli("devices", "run", "-c", str(config), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "[device.SC1] profile" in result.stderr and "HID devices need evdev: install lanehub[devices]" in result.stderr


class WheelProcess(ServiceProcess):
    """`lanehub KIND run` from the wheel's venv (ServiceProcess runs the checkout's)."""

    def __init__(self, lanehub: Path, kind: str, name: str, config, workdir: Path):
        super().__init__(kind, name, config, workdir)
        self.lanehub = lanehub

    def start(self) -> "WheelProcess":
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(self.lanehub), self.kind, "run", "-c", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=clean_env())
        return self


def seed_hq(wheel: Wheel, config: Path, workdir: Path) -> dict:
    """Through the wheel's CLI: a user who sees everything, and a record behind
    every page that takes one in its URL."""
    def hq(*args, input=None):
        return wheel.cli("hq", *args, "-c", str(config), input=input).stdout

    seeded = {"store_password": PASSWORD_RE.search(hq("store", "add", "S001")).group(1)}
    hq("users", "add", "admin", "--role", "admin", "--name", "Ada Admin", "--password-stdin", input=PASSWORD + "\n")
    seeded["token"] = hq("users", "token", "admin").strip()
    hq("extra-fields", "add", "loyalty_tier", "Loyalty tier")
    (workdir / "products.csv").write_text(PRODUCTS_CSV)
    hq("products", "import", str(workdir / "products.csv"))
    hq("rates", "add", "vip", "--name", "VIP", "--start", "2020-01-01")
    hq("rates", "line", "VIP", "MILK", "--discount", "10")
    hq("rates", "specific", "BREAD", "0.90", "--store", "S001")
    ann = json.loads(hq("customers", "add", "--first-name", "Ann", "--last-name", "Shopper", "--phone", "600000001",
                        "--email", "ann@example.com", "--rate", "VIP", "--extra", "loyalty_tier=gold"))
    twin = json.loads(hq("customers", "add", "--first-name", "Ann", "--last-name", "Shopper", "--phone", "600000001"))
    hq("customers", "add-card", ann["code"], "CARD-0001")
    hq("households", "add", "Shopper family", "--head", ann["code"])
    hq("coupons", "issue", "--customer", ann["code"], "--amount", "5")
    (workdir / "batch.csv").write_text("first_name,last_name,email,phone\nBea,Batch,bea@example.com,600000009\n"
                                       "Ann,Shopper,,600000001\n")
    new_batch = re.match(r"batch (\d+)", hq("batch", "new-customers", str(workdir / "batch.csv"))).group(1)
    updates = re.match(r"batch (\d+)", hq("batch", "customer-updates", "--set-rate", "VIP", twin["code"])).group(1)
    seeded.update(ann=ann, twin=twin, batches=[new_batch, updates])
    return seeded


def sell(chain: Chain, mqtt, receipts: Path) -> None:
    """A closed sale on lane L1 (its receipt printed by the wheel's printer bridge)
    and an open ticket on L2, so the lanes and sales pages have rows."""
    wait_until(lambda: db_value(edge_db(chain, "S001"), "SELECT state FROM device_status WHERE device = 'printer'")
               == "online", 20, message="the wheel's printer bridge online at the edge")
    client = mqtt(chain.store_brokers["S001"].port)
    one, two = Lane(client, "S001", "L1"), Lane(client, "S001", "L2")
    one.card("CARD-0001")
    one.scan("8410000000011")
    assert one.cmd("close")["status"] == "closed"
    two.scan("2000000000015")
    wait_until(lambda: db_value(edge_db(chain, "S001"), "SELECT status FROM print_jobs WHERE lane = 'L1'") == "printed",
               20, message="the receipt printed by the wheel's printer bridge")
    wait_until(lambda: db_query(hq_db(chain), "SELECT 1 FROM sales WHERE ticket = 'S001-L1-1'"), 20,
               message="the sale at HQ")
    assert b"S001-L1-1" in receipts.read_bytes()


def exceptions_in(log: str) -> dict[str, str]:
    """{path: the last line of its traceback} for Flask's "Exception on PATH [GET]" entries."""
    causes, path = {}, None
    for line in log.splitlines():
        match = re.search(r"Exception on (\S+) \[GET\]", line)
        if match:
            path = match.group(1)
        elif path and line and not line[0].isspace() and not line.startswith(("Traceback", "During handling", "The above")):
            causes[path], path = line.strip(), None
    return causes


def fills_for(site: str, seeded: dict) -> dict[str, list[dict[str, str]]]:
    ann, twin = seeded["ann"], seeded["twin"]
    customer = [{"ref": ann["code"]}]
    fills = {
        "/customers/<ref>": [{"ref": ann["code"]}, {"ref": ann["id"]}, {"ref": twin["code"]}],
        "/customers/<ref>/edit": customer,
        "/api/v1/customers/<ref>": customer,
        "/api/v1/customers/<ref>/sales": customer,
        "/static/<path:filename>": [{"filename": "lanehub.css"}],
    }
    if site == "edge":
        fills["/receipts/<job>.png"] = [{"job": seeded["job"]}]  # the picture of the receipt sold on L1
        fills["/lanes/<lane>/till"] = fills["/lanes/<lane>/till/ticket"] = [{"lane": "L1"}]
        fills["/lanes/<lane>/till/receipts/<ticket>.png"] = [{"lane": "L1", "ticket": seeded["ticket"]}]
    if site == "hq":
        a, b = sorted((ann["id"], twin["id"]))
        fills |= {
            "/batches/<ref>": [{"ref": batch} for batch in seeded["batches"]],
            "/duplicates/<a>/<b>": [{"a": a, "b": b}],
            "/gdpr/<ref>/export": customer,
            "/products/<sku>": [{"sku": "MILK"}, {"sku": "BREAD"}],
            "/rates/<code>": [{"code": "VIP"}],
        }
    return fills


def extra_paths(site: str, seeded: dict) -> list[str]:
    """Query strings that render other parts of the same pages (search results, price check)."""
    paths = ["/customers/?q=Ann", "/customers/?status=all&payment=current", "/api/v1/customers?q=Ann"]
    if site == "hq":
        paths += ["/customers/?duplicates=1", "/products/?q=milk", "/batches/?status=open",
                  f"/rates/?sku=MILK&customer={seeded['ann']['code']}&store=S001&day=2030-01-01"]
    return paths


def test_every_page_of_hq_and_the_store_renders_from_the_wheel(wheel, tmp_path, mqtt):
    # A receipt the bridge missed while subscribing is sent again a second later.
    chain = Chain(tmp_path / "chain", ("S001",), store_settings={"S001": {"print_retry": 1.0}})
    printer = None
    try:
        chain.start_brokers()
        hq_config = chain.hq_config_path
        hq_config.parent.mkdir(parents=True, exist_ok=True)
        hq_config.write_text(dump_toml(chain.hq_config()))
        seeded = seed_hq(wheel, hq_config, tmp_path)
        chain.store_passwords["S001"] = seeded["store_password"]

        chain.hq = WheelProcess(wheel.lanehub, "hq", "hq", chain.hq_config(), hq_config.parent).start()
        assert chain.hq.wait_for_log("lanehub-hq: connected", 30), chain.hq.tail()
        chain.edges["S001"] = WheelProcess(wheel.lanehub, "edge", "S001", chain.edge_config("S001"),
                                           chain.workdir / "S001").start()
        wait_until(lambda: edge_ready(chain, "S001"), 30, message="the edge's first snapshot")
        receipts = tmp_path / "receipts.prn"
        receipts.touch()  # a file printer's file must exist (the bridge never creates it)
        printer = WheelProcess(wheel.lanehub, "devices", "devices", (
            f'[store]\nid = "S001"\n\n[broker]\nhost = "127.0.0.1"\nport = {chain.store_brokers["S001"].port}\n\n'
            f'[devices]\nretry = 0.5\n\n[device.printer]\nprofile = "file-printer"\nlane = "L1"\npath = "{receipts}"\n'
        ), chain.workdir / "devices").start()
        sell(chain, mqtt, receipts)
        seeded["job"] = db_value(edge_db(chain, "S001"), "SELECT job FROM print_jobs WHERE lane = 'L1'")
        seeded["ticket"] = db_value(edge_db(chain, "S001"), "SELECT ticket FROM print_jobs WHERE lane = 'L1'")

        broken, wrong = {}, {}
        for site, port in (("hq", chain.web_ports["hq"]), ("edge", chain.web_ports["S001"])):
            routes = list_routes(str(wheel.python), site)
            assert len(routes) >= 10, routes
            paths, missing = expand(routes, fills_for(site, seeded))
            assert sorted(missing) == sorted(UNWALKABLE[site]), \
                f"{site}: GET routes with URL arguments the walk does not fill (give values in fills_for, or list " \
                f"them in UNWALKABLE with the reason): {sorted(set(missing) - set(UNWALKABLE[site]))}"
            base = f"http://127.0.0.1:{port}"
            statuses = walk(base, login(base, "admin", PASSWORD), paths + extra_paths(site, seeded), seeded["token"])
            print(f"{site}: {json.dumps(statuses, indent=1)}")  # shown when the test fails
            causes = exceptions_in((chain.hq if site == "hq" else chain.edges["S001"]).log_path.read_text(errors="replace"))
            broken |= {f"{site} {path}": f"{status} ({causes.get(path.partition('?')[0], 'see its log')})"
                       for path, status in statuses.items() if status >= 500}
            wrong |= {f"{site} {path}": status for path, status in statuses.items() if status != NOT_200.get(path, 200)}
        assert not broken, "pages that answered 5xx:\n" + "\n".join(f"  {p}: {c}" for p, c in broken.items())
        assert not wrong, f"pages that did not render: {wrong}"
    except BaseException:
        for proc in [chain.hq, *chain.edges.values(), printer]:
            if proc is not None:
                print(f"----- {proc.name} log -----\n{proc.tail(60)}")
        raise
    finally:
        if printer is not None:
            printer.kill()
        kill_chain(chain)
