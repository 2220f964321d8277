"""`lanehub demo` starts a whole chain with simulated lane devices, replicates the
demo customers, prints a closed ticket's receipt, and stops all on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from helpers import db_query, wait_until

from lanehub.chain.mosquitto import port_open
from lanehub.protocol import topics


def test_demo_runs_the_chain_and_ctrl_c_stops_everything(tmp_path, mqtt):
    workdir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "lanehub.cli.main", "demo", "--dir", str(workdir), "--customers", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    output = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(output)
        assert "lanehub demo is running" in text, text
        ports = [int(p) for p in re.findall(r"mqtt://127\.0\.0\.1:(\d+)", text)]
        assert len(ports) == 3 and all(port_open(p) for p in ports)
        for store in ("S001", "S002"):
            count = db_query(workdir / f"{store}.db", "SELECT count(*) FROM customers WHERE coalesce(external_id, '') = ''")[0][0]
            assert count == 40, f"{store} has {count} customers"
            wait_until(lambda s=store: db_query(workdir / f"{s}.db", "SELECT count(*) FROM customers "
                                                "WHERE external_id != ''")[0][0] == 4, 15,
                       message=f"the sample POS customers at {store}")
            wait_until(lambda s=store: db_query(workdir / f"{s}.db", "SELECT count(*) FROM products")[0][0] == 10, 15,
                       message=f"the demo catalogue at {store}")
        assert [tuple(r) for r in db_query(workdir / "hq.db", "SELECT status, description FROM batches")] == [
            ("open", "Sign-up sheets, week 48")]
        picture = ring_up_and_close_a_ticket(text, mqtt)
        assert picture.name.startswith("S001-L1-") and picture.with_suffix(".txt").exists()
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 7  # 3 brokers, HQ, 2 edges, 2 device simulators
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, rest
        assert "Stopped." in rest
        wait_until(lambda: not any(port_open(p) for p in ports), 10, message="every broker port closed")
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ring_up_and_close_a_ticket(summary: str, mqtt) -> Path:
    """Scan the demo's milk on S001's simulated scanner (its form), close the ticket
    as a lane would; the receipt's picture from S001's simulated printer."""
    found = re.search(r"S001 devices .*? on lanes L1, L2: scan at (http://127\.0\.0\.1:\d+/), "
                      r"receipts printed to (\S+)", summary)
    assert found, summary
    url, receipts = found.group(1), Path(found.group(2))
    s001_port = int(re.search(r"store S001 +broker mqtt://127\.0\.0\.1:(\d+)", summary).group(1))
    token = re.search(r'name="token" value="([^"]+)"', urllib.request.urlopen(url, timeout=10).read().decode()).group(1)
    lane = mqtt(s001_port)
    states = []
    lane.subscribe(topics.ticket_state("S001", "L1"), lambda m: states.append(json.loads(m.payload)))
    form = f"lane=L1&code=8410297112041&token={token}".encode()
    urllib.request.urlopen(urllib.request.Request(url + "scan", data=form, method="POST"), timeout=10)
    wait_until(lambda: any(s["status"] == "open" and s["lines"] for s in states), 20, message="the milk on L1's ticket")
    lane.publish(topics.ticket_cmd("S001", "L1"), json.dumps({"v": 1, "id": str(uuid.uuid4()), "op": "close"}).encode())
    return wait_until(lambda: next(iter(receipts.glob("S001-L1-*.png")), None) if receipts.exists() else None, 30,
                      message=f"the receipt's picture in {receipts}")
