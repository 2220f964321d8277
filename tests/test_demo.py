"""`lanehub demo` starts a whole chain, replicates the demo customers, and stops all on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from core.broker import port_open

from conftest import db_query, wait_until


def test_demo_runs_the_chain_and_ctrl_c_stops_everything(tmp_path):
    workdir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "demo", "--dir", str(workdir), "--customers", "40"],
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
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 5  # 3 brokers, HQ, 2 edges
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
