"""No lane waits on a silent HQ: a store out of leased numbers whose HQ is frozen
(the link still counts as up) answers creates at once with provisional codes,
logs one warning line per handled link error (no tracebacks), and every
writer to HQ's database waits for the lock instead of failing."""

from __future__ import annotations

import json
import signal
import sqlite3
import statistics
import threading
import time
import uuid

import pytest
from helpers import db_query, edge_db, hq_db, lane_request, replica_state, wait_converged, wait_until
from test_last_writer_wins import process_state


@pytest.fixture
def hq_backend():
    """HQ on its SQLite file: what this module tests is SQLite's own (PostgreSQL's backups
    and locks are PostgreSQL's)."""
    return "sqlite"


def test_creates_out_of_numbers_with_a_frozen_hq_answer_at_once_with_provisional_codes(make_chain, mqtt):
    chain = make_chain(block_size=2, code_low_water=1)
    lane = mqtt(chain.store_brokers["S001"].port)
    lane.subscribe("test/#", lambda m: None)
    wait_until(lambda: db_query(edge_db(chain, "S001"), "SELECT count(*) FROM code_blocks")[0][0] >= 1, 10,
               message="S001's first code block")
    hq = chain.hq.process
    hq.send_signal(signal.SIGSTOP)
    wait_until(lambda: process_state(hq.pid) == "T", 5, 0.01, message="HQ to be stopped")
    log_start = chain.edges["S001"].log_path.stat().st_size
    made, took = [], []
    try:
        for i in range(8):
            started = time.monotonic()
            reply = lane_request(lane, "S001", "L1", {"op": "create", "id": str(uuid.uuid4()),
                                                      "customer": {"first_name": f"Quick{i}", "last_name": "Frozen"}})
            took.append(time.monotonic() - started)
            assert reply["ok"], reply
            made.append(reply["customer"])
        # The lease requests time out (5 s) while HQ stays frozen: handled, and said.
        wait_until(lambda: "WARNING" in log_since(chain, log_start), 20, 0.2, message="the edge's warning")
    finally:
        hq.send_signal(signal.SIGCONT)
    codes = [customer["code"] for customer in made]
    assert sum("-P" in code for code in codes) >= 5, codes  # out of numbers: provisional
    assert max(took) < 0.5 and statistics.median(took) < 0.1, took  # nobody waited for HQ

    hq_state = wait_converged(chain, 60)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state
    final = {row["id"]: row["code"] for row in db_query(hq_db(chain), "SELECT id, code FROM customers")}
    assert all("-P" not in final[customer["id"]] for customer in made)
    log = log_since(chain, log_start)
    assert "Traceback" not in log and "ERROR" not in log, log
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert warnings and all("edge S001:" in line for line in warnings), log  # one line each, saying what


def log_since(chain, offset: int) -> str:
    with open(chain.edges["S001"].log_path, errors="replace") as fh:
        fh.seek(offset)
        return fh.read()


def test_an_hq_cli_edit_waits_for_the_write_lock_instead_of_failing(chain):
    made = json.loads(chain.hq_cli("customers", "add", "--first-name", "Locked", "--last-name", "Out").stdout)
    holder = sqlite3.connect(hq_db(chain), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # a writer holding the lock (a frozen HQ, a long import)
    release = threading.Timer(3.0, holder.execute, ("COMMIT",))
    release.start()
    try:
        edit = chain.hq_cli("customers", "edit", made["id"], "--city", "Lisbon", check=False)
    finally:
        release.join()
        holder.close()
    assert edit.returncode == 0, edit.stderr
    assert json.loads(edit.stdout)["city"] == "Lisbon"
