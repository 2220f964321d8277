"""`lanehub demo` as a newcomer runs it: one real demo process for the module (its
own temporary folder, as without --dir), started from the repository folder.
It starts a whole chain with simulated lane devices and replicates the demo data;
the pages it prints answer and its printed login logs in; every "Try:" line runs
as typed; a Ctrl-C sent as a terminal sends it (to the whole process group)
stops everything, each edge's last retained status is its clean stop, and the
temporary folder is gone. The tests run in file order: the Ctrl-C one is last."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import db_query, wait_until

from lanehub.chain.demo_data import FIRST, LAST, ascii_letters, demo_customers
from lanehub.chain.mosquitto import port_open
from lanehub.protocol import topics
from lanehub.protocol.lane import DeviceStatus, EdgeStatus

ROOT = Path(__file__).resolve().parent.parent
STORES = ("S001", "S002")
LANES = ("L1", "L2")


@dataclass
class RunningDemo:
    proc: subprocess.Popen
    summary: str
    workdir: Path

    def url(self, label: str) -> str:
        """The URL the summary prints after ``label`` ("HQ Manager", "store S001 admin", "store S001 lanes")."""
        found = re.search(rf"^  {re.escape(label)} +(http://127\.0\.0\.1:\d+/\S*)$", self.summary, re.M)
        assert found, f"the demo prints no URL for {label}:\n{self.summary}"
        return found.group(1)

    def login(self) -> tuple[str, str]:
        found = re.search(r"Log in as (\S+) with password (\S+)", self.summary)
        assert found, self.summary
        return found.group(1), found.group(2)

    def broker_port(self, store: str) -> int:
        return int(re.search(rf"store {store} +broker mqtt://127\.0\.0\.1:(\d+)", self.summary).group(1))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    temp = tmp_path_factory.mktemp("demo-tmp")  # the demo's mkdtemp goes here, not into /tmp
    # Its own session, as a shell gives a foreground job: Ctrl-C goes to the whole group.
    proc = subprocess.Popen([sys.executable, "-m", "lanehub.cli.main", "demo", "--customers", "40"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1", "TMPDIR": str(temp)})
    output = []
    children: list[str] = []
    try:
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(output)
        assert "lanehub demo is running" in text, text
        workdir = Path(re.search(r"Starting the lanehub demo in (\S+) \.\.\.", text).group(1))
        assert workdir.parent == temp
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        yield RunningDemo(proc, text, workdir)
    finally:
        if proc.poll() is None:  # a test failed before the Ctrl-C one: stop it the same orderly way
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                for pid in children:
                    subprocess.run(["kill", "-9", pid], capture_output=True)
                proc.kill()
                proc.wait()


def test_the_demo_runs_the_chain_and_replicates_its_data(demo):
    ports = [int(p) for p in re.findall(r"mqtt://127\.0\.0\.1:(\d+)", demo.summary)]
    assert len(ports) == 3 and all(port_open(p) for p in ports)
    for store in STORES:
        db = demo.workdir / f"{store}.db"
        count = db_query(db, "SELECT count(*) FROM customers WHERE coalesce(external_id, '') = ''")[0][0]
        assert count == 40, f"{store} has {count} customers"
        wait_until(lambda d=db: db_query(d, "SELECT count(*) FROM customers WHERE external_id != ''")[0][0] == 4, 15,
                   message=f"the sample POS customers at {store}")
        wait_until(lambda d=db: db_query(d, "SELECT count(*) FROM products")[0][0] == 10, 15,
                   message=f"the demo catalogue at {store}")
    assert [tuple(r) for r in db_query(demo.workdir / "hq.db", "SELECT status, description FROM batches")] == [
        ("open", "Sign-up sheets, week 48")]
    children = subprocess.run(["pgrep", "-P", str(demo.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 7  # 3 brokers, HQ, 2 edges, 2 device simulators


def test_a_closed_ticket_s_receipt_prints_as_a_picture(demo, mqtt):
    """Scan the demo's milk on S001's simulated scanner (its form), close the ticket
    as a lane would; the receipt's picture from S001's simulated printer."""
    found = re.search(r"S001 devices .*? on lanes L1, L2: scan at (http://127\.0\.0\.1:\d+/), "
                      r"receipts printed to (\S+)", demo.summary)
    assert found, demo.summary
    url, receipts = found.group(1), Path(found.group(2))
    token = re.search(r'name="token" value="([^"]+)"', urllib.request.urlopen(url, timeout=10).read().decode()).group(1)
    lane = mqtt(demo.broker_port("S001"))
    states = []
    lane.subscribe(topics.ticket_state("S001", "L1"), lambda m: states.append(json.loads(m.payload)))
    form = f"lane=L1&code=8410297112041&token={token}".encode()
    urllib.request.urlopen(urllib.request.Request(url + "scan", data=form, method="POST"), timeout=10)
    wait_until(lambda: any(s["status"] == "open" and s["lines"] for s in states), 20, message="the milk on L1's ticket")
    lane.publish(topics.ticket_cmd("S001", "L1"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "op": "close"}).encode())
    picture = wait_until(lambda: next(iter(receipts.glob("S001-L1-*.png")), None) if receipts.exists() else None, 30,
                         message=f"the receipt's picture in {receipts}")
    assert picture.with_suffix(".txt").exists()


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 is answered as an HTTPError: the test reads its Location


def browser() -> urllib.request.OpenerDirector:
    """A client with its own cookies (a session), following redirects."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def status_of(url: str) -> tuple[int, str]:
    """(status, Location) of a GET without a session, redirects not followed."""
    try:
        with urllib.request.build_opener(NoRedirects()).open(url, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


def log_in(opener, site_url: str, username: str, password: str) -> str:
    """The login form as a person fills it in (with its CSRF token); the page it lands on."""
    form = opener.open(site_url + "login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token}).encode()
    with opener.open(urllib.request.Request(site_url + "login", data=data, method="POST"), timeout=10) as landed:
        assert landed.status == 200 and not landed.url.endswith("/login"), landed.url
        return landed.read().decode()


def test_the_printed_pages_answer_with_their_login_page(demo):
    for label in ("HQ Manager", *(f"store {store} admin" for store in STORES)):
        page = browser().open(demo.url(label), timeout=10)
        assert page.status == 200 and urllib.parse.urlparse(page.url).path == "/login", (label, page.url)
        assert 'name="csrf_token"' in page.read().decode()
    hq_port = urllib.parse.urlparse(demo.url("HQ Manager")).port
    stores = {urllib.parse.urlparse(demo.url(f"store {s} admin")).port for s in STORES}
    assert len(stores | {hq_port}) == 3, "every site on its own port"


def test_every_printed_lanes_url_asks_for_a_login(demo):
    for store in STORES:
        url = demo.url(f"store {store} lanes")
        assert url == demo.url(f"store {store} admin") + "lanes/"
        status, location = status_of(url)
        assert (status, urllib.parse.urlparse(location).path) == (302, "/login"), (url, status, location)


def test_every_lane_s_till_url_is_printed_and_a_sale_on_it_prints_its_receipt(demo):
    """The printed till of S001's L2, logged in with the printed login: milk scanned
    in the barcode box, CUST-00001 attached by its code (VIP: 10 % off), closed; the
    receipt's picture on the till, and on the simulated printer."""
    for store in STORES:
        for lane in LANES:
            url = demo.url(f"store {store} till {lane}")
            assert url == demo.url(f"store {store} admin") + f"lanes/{lane}/till"
            status, location = status_of(url)
            assert (status, urllib.parse.urlparse(location).path) == (302, "/login"), (url, status, location)
    opener = browser()
    log_in(opener, demo.url("store S001 admin"), *demo.login())
    till = demo.url("store S001 till L2")
    token = re.search(r'name="csrf_token" value="([^"]+)"', opener.open(till, timeout=10).read().decode()).group(1)

    def post(action: str, **fields) -> str:
        data = urllib.parse.urlencode({"csrf_token": token, **fields}).encode()
        with opener.open(urllib.request.Request(f"{till}/{action}", data=data), timeout=20) as answer:
            return answer.read().decode()

    post("add", code="8410297112041", qty="2")
    post("command", op="set_customer", who="CUST-00001")
    screen = post("command", op="close")
    ticket = re.search(r'id="till-ticket">(S001-L2-\d+)<', screen).group(1)
    assert "closed" in screen and "rate VIP" in screen and 'id="till-total">2.14 EUR' in screen, screen
    picture = re.search(r'<img src="(/lanes/L2/till/receipts/[^"]+\.png)"', screen).group(1)
    with opener.open(demo.url("store S001 admin").rstrip("/") + picture, timeout=10) as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    receipts = Path(re.search(r"S001 devices .*? receipts printed to (\S+)", demo.summary).group(1))
    wait_until(lambda: list(receipts.glob(f"{ticket}-*.png")), 30, message=f"{ticket} on the simulated printer")


def test_the_printed_login_logs_in_at_hq_and_at_every_store(demo):
    username, password = demo.login()
    assert "for this demo only" in demo.summary
    landed = log_in(browser(), demo.url("HQ Manager"), username, password)
    assert "Log out" in landed and "Demo admin" in landed
    for store in STORES:  # the user replicated: the store's own replica lets it in
        opener = browser()
        log_in(opener, demo.url(f"store {store} admin"), username, password)
        with opener.open(demo.url(f"store {store} lanes"), timeout=10) as lanes:
            assert lanes.status == 200 and lanes.url.endswith("/lanes/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        log_in(browser(), demo.url("HQ Manager"), username, password + "x")
    assert refused.value.code == 401


def try_lines(summary: str) -> list[str]:
    block = summary.split("Try (from this folder):\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_every_try_line_runs_as_typed_from_the_repository_folder(demo):
    lines = try_lines(demo.summary)
    assert len(lines) >= 6
    lanehub = [line for line in lines if "lanehub " in line.split(" -", 1)[0]]
    assert lanehub and all(line.startswith(".venv/bin/lanehub ") for line in lanehub), lanehub
    for line in lines:
        try:
            done = subprocess.run(line, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired as running:  # mosquitto_sub runs until Ctrl-C: it printed the topics
            assert line.startswith("mosquitto_sub") and b"lanehub/" in (running.stdout or b""), line
            continue
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"


def test_demo_emails_are_ascii_and_keep_every_letter_of_the_names(demo):
    assert ascii_letters("García") == "garcia" and ascii_letters("Müller") == "muller"
    assert ascii_letters("Øyvind") == "oyvind" and ascii_letters("O'Brien") == "obrien"
    for name in FIRST + LAST:
        # Every letter of the name is in its ASCII form (a letter may become two: ß -> ss).
        letters = [c for c in unicodedata.normalize("NFKD", name) if c.isalpha()]
        assert len(ascii_letters(name)) >= len(letters), name
    generated = [c for c in demo_customers(300) if c["email"]]
    assert {c["first_name"] for c in generated} & {"María", "Chloé", "Øyvind", "Björn"}
    for i, fields in enumerate(demo_customers(300)):
        if fields["email"]:
            local = fields["email"].split("@")[0]
            assert local.isascii() and local == f"{ascii_letters(fields['first_name'])}.{ascii_letters(fields['last_name'])}{i}"
    stored = [row[0] for row in db_query(demo.workdir / "S002.db", "SELECT email FROM customers WHERE email != ''")]
    assert stored and all(email.isascii() for email in stored)
    assert not [e for e in stored if re.search(r"\.(garca|mller|nez|lpez)\d", e)], stored


def test_ctrl_c_stops_everything_cleanly_and_removes_the_temporary_folder(demo, mqtt):
    edge_statuses: dict[str, list[EdgeStatus]] = {store: [] for store in STORES}
    device_statuses: dict[str, list[DeviceStatus]] = {}
    for store in STORES:
        client = mqtt(demo.broker_port(store))
        client.subscribe(topics.edge_status(store), lambda m, s=store: edge_statuses[s].append(EdgeStatus.parse(m.payload)))
        client.subscribe(topics.device_status_filter(store),
                         lambda m: device_statuses.setdefault(m.topic, []).append(DeviceStatus.parse(m.payload)))
    wait_until(lambda: all(statuses and statuses[-1].state == "online" for statuses in edge_statuses.values()), 15,
               message="both edges' retained status online")
    wait_until(lambda: len(device_statuses) == len(STORES) * len(LANES) * 3, 15, message="every simulated device's status")
    ports = [int(p) for p in re.findall(r"mqtt://127\.0\.0\.1:(\d+)", demo.summary)]
    children = subprocess.run(["pgrep", "-P", str(demo.proc.pid)], capture_output=True, text=True).stdout.split()
    os.killpg(demo.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    rest = demo.proc.communicate(timeout=90)[0]
    assert demo.proc.returncode == 0, rest
    assert "Stopped." in rest
    wait_until(lambda: not any(port_open(p) for p in ports), 10, message="every broker port closed")
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    for store, statuses in edge_statuses.items():
        # The clean stop carries the edge's figures; the last will says last_seq 0.
        assert statuses[-1].state == "offline" and statuses[-1].last_seq > 0, (store, statuses[-3:])
    for topic, statuses in device_statuses.items():
        assert (statuses[-1].state, statuses[-1].detail) == ("offline", "stopped"), (topic, statuses[-3:])
    assert not demo.workdir.exists(), f"the demo left {demo.workdir} behind"
