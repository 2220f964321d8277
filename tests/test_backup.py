"""`lanehub hq|edge backup` and `restore` against real services, brokers and databases.

A backup taken while both sites are written to is one consistent commit's
state; a restored edge catches up from HQ without duplicating or reusing
anything; a restored HQ comes back with what the backup held, and the test
below pins down what happens to stores that were ahead of it (a known hole:
see the restore procedure). Restores refuse a running service, the other
site's database and another store's backup; errors are one line.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import db_query, db_value, edge_db, edge_ready, hq_db, hq_head, last_seq, replica_state, wait_converged, wait_until
from test_crash_recovery import Burst

from hq.db import HQDatabase
from lanehub.chain.processes import lanehub_command, run_lanehub
from lanehub.domain.codes import CodeFormat
from lanehub.runtime.config import dump_toml


@pytest.fixture
def hq_backend():
    """HQ on its SQLite file: what this module tests is SQLite's own (PostgreSQL's backups
    and locks are PostgreSQL's)."""
    return "sqlite"

CODES = CodeFormat("CUST-", 5)


# Restores refuse while any process holds a database open: setup commands run as processes.
CHAIN_CLI_IN_PROCESS = False


def cli(chain, site: str, *args: str) -> subprocess.CompletedProcess:
    """`lanehub hq ARGS` or `lanehub edge ARGS` for store ``site``, not checked."""
    if site == "hq":
        return chain.hq_cli(*args, check=False)
    return chain.edge_cli(site, *args, check=False)


def backup(chain, site: str, dest: Path) -> Path:
    result = cli(chain, site, "backup", str(dest))
    assert result.returncode == 0, result.stderr
    path, size = re.fullmatch(r"(\S+) (\d+) bytes\n", result.stdout).groups()
    assert Path(path).stat().st_size == int(size)
    return Path(path)


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """A failure is one line on stderr, no traceback, naming what is wrong."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def integrity(path: Path) -> str:
    return db_value(path, "PRAGMA integrity_check")


def customers(path: Path) -> dict[str, str]:
    return {row["first_name"]: row["code"] for row in db_query(path, "SELECT first_name, code FROM customers")}


def add_customer(chain, site: str, first_name: str) -> dict:
    out = cli(chain, site, "customers", "add", "--first-name", first_name, "--last-name", "Backup")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def edit_customer(chain, site: str, ref: str, *options: str) -> None:
    out = cli(chain, site, "customers", "edit", ref, *options)
    assert out.returncode == 0, out.stderr


def at_hq(chain, first_name: str) -> bool:
    return bool(db_value(hq_db(chain), "SELECT count(*) FROM customers WHERE first_name = ?", (first_name,)))


def no_leftovers(directory: Path) -> None:
    """No temporary file of a backup or restore (``.NAME.tmp-...``) is left behind."""
    assert not [p.name for p in directory.iterdir() if re.match(r"^\..*\.tmp-", p.name)]


class HQWriter:
    """An operator creating customers at HQ as fast as commits return, beside the
    running service (as `lanehub hq customers add` does); records what committed."""

    def __init__(self, path: Path):
        self.path = path
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        db = HQDatabase(self.path, CODES, 100)  # a connection belongs to its thread
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                self.acked.append(db.create_customer({"first_name": f"Hq{n}", "last_name": "Writer"}, "test")["id"])
        finally:
            db.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def lane_client(mqtt):
    def make(chain, store: str = "S001"):
        client = mqtt(chain.store_brokers[store].port)
        client.subscribe("test/#", lambda m: None)
        return client
    return make


# --- backup while written -------------------------------------------------------------------

def test_backups_taken_while_both_sites_are_written_are_consistent_and_hold_what_was_acknowledged(
        make_chain, lane_client, tmp_path):
    chain = make_chain(stores=("S001",))
    dest = tmp_path / "backups"
    dest.mkdir()
    with Burst(lane_client(chain), "S001", "Lane") as lane, HQWriter(hq_db(chain)) as operator:
        lane.wait_for(20)
        wait_until(lambda: len(operator.acked) >= 20, message="HQ writes")
        lane_before, hq_before = [c["id"] for c in lane.acked], list(operator.acked)
        # The edge acknowledges a lane at once; HQ has it once the outbox delivered (under load, later).
        marks = ",".join("?" * len(lane_before))
        wait_until(lambda: db_value(hq_db(chain), f"SELECT count(*) FROM customers WHERE id IN ({marks})",
                                    tuple(lane_before)), message="HQ to have some of the lane's customers")
        edge_copy = backup(chain, "S001", dest)
        hq_copy = backup(chain, "hq", dest)
        lane.wait_for(len(lane_before) + 5)  # both kept writing while the copies were made
        assert len(operator.acked) > len(hq_before)

    assert re.fullmatch(r"edge-S001-\d{8}T\d{6}\.db", edge_copy.name) and re.fullmatch(r"hq-\d{8}T\d{6}\.db", hq_copy.name)
    for copy in (edge_copy, hq_copy):
        assert stat.S_IMODE(copy.stat().st_mode) == 0o640
        assert integrity(copy) == "ok"
        assert db_value(copy, "PRAGMA journal_mode") == "delete"  # one self-contained file
    no_leftovers(dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted([edge_copy.name, hq_copy.name])

    # What was acknowledged before the backup began is in it.
    edge_ids = {row[0] for row in db_query(edge_copy, "SELECT id FROM customers")}
    assert set(lane_before) <= edge_ids
    hq_ids = {row[0] for row in db_query(hq_copy, "SELECT id FROM customers")}
    assert set(hq_before) <= hq_ids
    assert set(lane_before) & hq_ids  # and what the edge had sent, acked by HQ

    # One commit's state: HQ's log is gap-free and holds every record's create, its code counter
    # is past every code; the edge's code blocks are past every code it gave out.
    count, top = db_query(hq_copy, "SELECT count(*), max(seq) FROM changes")[0]
    assert count == top
    logged = {row[0] for row in db_query(hq_copy, "SELECT DISTINCT key FROM changes WHERE entity = 'customer'")}
    assert hq_ids == logged
    next_code = int(db_value(hq_copy, "SELECT value FROM meta WHERE key = 'next_code'"))
    numbers = [CODES.number(row[0]) for row in db_query(hq_copy, "SELECT code FROM customers")]
    ends = [row[0] for row in db_query(hq_copy, "SELECT [end] FROM code_blocks")]
    assert max(numbers + ends) < next_code
    blocks = db_query(edge_copy, "SELECT start, end, next FROM code_blocks")
    replaced = {row[0] for row in db_query(edge_copy, "SELECT customer_id FROM code_aliases")}
    for (key, code) in db_query(edge_copy, "SELECT id, code FROM customers WHERE origin_store = 'S001'"):
        number = CODES.number(code)
        if number is None:  # provisional: out of numbers while HQ was slow to lease (edge/lane/customers.py)
            continue
        if key in replaced:  # a provisional code HQ replaced: the permanent code is from HQ's counter
            continue
        assert any(b["start"] <= number < b["next"] for b in blocks), code
    # Every local create is either still in the outbox or came back down with its seq.
    outbox = {json.loads(row[0])["key"] for row in db_query(edge_copy, "SELECT change FROM outbox")}
    assert {row[0] for row in db_query(edge_copy, "SELECT id FROM customers WHERE origin_store = 'S001'")} <= outbox | hq_ids
    assert last_seq(edge_copy) <= top
    # The copy says what it is.
    marks = dict(db_query(edge_copy, "SELECT key, value FROM meta WHERE key LIKE 'backup.%'"))
    assert marks["backup.site"] == "edge" and marks["backup.store"] == "S001" and marks["backup.source"] == str(edge_db(chain, "S001"))


# --- restoring an edge ------------------------------------------------------------------------

def test_a_restored_edge_catches_up_from_hq_without_duplicates_or_reused_codes(make_chain, tmp_path):
    chain = make_chain()
    add_customer(chain, "hq", "Alice")
    add_customer(chain, "S001", "Bob")
    wait_converged(chain)

    # A change still in the outbox when the backup is taken (HQ is away), applied at HQ afterwards.
    chain.hq.stop()
    add_customer(chain, "S001", "Xavier")
    copy = backup(chain, "S001", tmp_path / "edge-S001.db")
    assert db_value(copy, "SELECT count(*) FROM outbox") >= 1
    chain.hq.start()
    wait_until(lambda: at_hq(chain, "Xavier"), 30, message="Xavier at HQ")

    # After the backup: HQ creates and edits, and the store creates and edits (all reach HQ).
    add_customer(chain, "hq", "Carol")
    edit_customer(chain, "hq", customers(hq_db(chain))["Alice"], "--email", "alice@example.com")
    eve = add_customer(chain, "S001", "Eve")
    edit_customer(chain, "S001", customers(edge_db(chain, "S001"))["Bob"], "--phone", "+34 600 111 222")
    wait_converged(chain)

    # A backup from before an upgrade: the last edge migration had not run yet.
    old = sqlite3.connect(copy)
    old.execute("ALTER TABLE device_status DROP COLUMN last_read")
    old.execute("DELETE FROM _sqlite_migrations WHERE migration_set = 'lanehub.edge' AND name = 'm006_last_read'")
    old.commit()
    old.close()

    chain.edges["S001"].stop()
    db = edge_db(chain, "S001")
    result = cli(chain, "S001", "restore", str(copy))
    assert result.returncode == 0, result.stderr
    assert "dropped 1 leased code block" in result.stdout
    kept = list(db.parent.glob("S001.db.before-restore-????????T??????"))
    assert len(kept) == 1 and kept[0].name in result.stdout and integrity(kept[0]) == "ok"
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    assert "Eve" not in customers(db) and db_value(db, "SELECT count(*) FROM code_blocks") == 0

    chain.edges["S001"].start()
    hq_state = wait_converged(chain, 40)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state
    names = customers(hq_db(chain))
    assert sorted(names) == ["Alice", "Bob", "Carol", "Eve", "Xavier"]
    assert len(set(names.values())) == len(names)
    assert names["Eve"] == eve["code"]
    assert db_value(hq_db(chain), "SELECT count(*) FROM changes WHERE entity = 'customer' AND key = "
                    "(SELECT id FROM customers WHERE first_name = 'Xavier')") == 1  # applied once
    assert "last_read" in {row[1] for row in db_query(db, "PRAGMA table_info(device_status)")}  # migrated forward

    # A customer made at the restored store gets a code no one has, from a new block, and HQ accepts it.
    wait_until(lambda: db_value(db, "SELECT count(*) FROM code_blocks"), 20, message="a new code block at S001")
    frank = add_customer(chain, "S001", "Frank")
    assert frank["code"] not in names.values()
    hq_state = wait_converged(chain, 30)
    assert customers(hq_db(chain))["Frank"] == frank["code"]
    assert db_value(hq_db(chain), "SELECT count(*) FROM rejections") == 0
    assert db_value(db, "SELECT count(*) FROM rejections") == 0
    assert replica_state(db) == hq_state


# --- restoring HQ ------------------------------------------------------------------------------

def test_a_restored_hq_has_what_the_backup_held_and_stores_ahead_of_it_diverge(make_chain, tmp_path):
    """Pins down today's behaviour when a store is ahead of a restored HQ (the hole
    described in the restore procedure): its changes HQ had accepted after the
    backup are not resent, and HQ hands out seq numbers again, so the store skips
    HQ's changes under seq numbers it already applied. (Code numbers are not given
    out twice: the restore keeps the replaced database's counter and leases.)
    Resetting the store (a new replica from HQ's snapshot) makes it converge again."""
    chain = make_chain(stores=("S001",))
    add_customer(chain, "hq", "Alice")
    add_customer(chain, "S001", "Bob")
    wait_converged(chain)
    copy = backup(chain, "hq", tmp_path)  # a directory: hq-TIMESTAMP.db
    backup_head = hq_head(chain)

    carol = add_customer(chain, "hq", "Carol")
    add_customer(chain, "S001", "Dave")
    wait_converged(chain)
    ahead = hq_head(chain)
    assert ahead > backup_head

    chain.hq.stop()
    refused(cli(chain, "hq", "restore", str(copy)), "ahead of the backup", "--force")
    result = cli(chain, "hq", "restore", str(copy), "--force")
    assert result.returncode == 0, result.stderr
    assert "kept from the replaced database: the next code number" in result.stdout
    chain.hq.start()

    # HQ is back with what the backup held.
    assert sorted(customers(hq_db(chain))) == ["Alice", "Bob"]
    assert hq_head(chain) == backup_head
    edge = edge_db(chain, "S001")
    wait_until(lambda: db_value(hq_db(chain), "SELECT last_seq FROM stores WHERE id = 'S001'") == ahead, 20,
               message="S001's status at the restored HQ")  # `hq store list` shows a negative lag

    # Dave was acknowledged, so S001 has no outbox row to resend: HQ never gets him back.
    erin = add_customer(chain, "hq", "Erin")
    time.sleep(3 * chain.outbox_retry + 2)  # resends, heads (every 2 s) and catch-ups had their chance
    assert not at_hq(chain, "Dave")
    assert db_value(edge, "SELECT count(*) FROM outbox") == 0
    # HQ numbered Erin's create with a seq S001 already applied (Carol's), so S001 skips it.
    # Her code is a new one: the restore kept the replaced database's code counter.
    assert hq_head(chain) <= ahead and last_seq(edge) == ahead
    assert "Erin" not in customers(edge)
    assert CODES.number(erin["code"]) > CODES.number(carol["code"])

    # Reset the store: with an empty outbox, a new replica from HQ's snapshot converges.
    chain.edges["S001"].stop()
    assert db_value(edge, "SELECT count(*) FROM outbox") == 0
    for path in (edge, Path(f"{edge}-wal"), Path(f"{edge}-shm")):
        if path.exists():
            path.rename(f"{path}.reset")
    chain.edges["S001"].start()
    wait_until(lambda: edge_ready(chain, "S001"), 30, message="S001's new snapshot")
    hq_state = wait_converged(chain, 40)
    assert replica_state(edge) == hq_state
    assert sorted(customers(edge)) == ["Alice", "Bob", "Erin"]  # Carol and Dave are gone from the chain


# --- refusals and errors -------------------------------------------------------------------------

def test_restore_refuses_a_running_service_the_other_site_and_another_store(make_chain, tmp_path):
    chain = make_chain()
    backups = {site: backup(chain, site, tmp_path) for site in ("hq", "S001", "S002")}
    db = edge_db(chain, "S001")
    before = replica_state(db)

    refused(cli(chain, "S001", "restore", str(backups["S001"])), "in use", "stop")
    refused(cli(chain, "hq", "restore", str(backups["hq"])), "in use", "stop")

    chain.edges["S001"].stop()
    refused(cli(chain, "S001", "restore", str(backups["hq"])), "HQ's database", "store S001's")
    refused(cli(chain, "S001", "restore", str(backups["S002"])), "another store (S002)")
    refused(cli(chain, "S001", "restore", str(tmp_path / "missing.db")), "does not exist")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, just some bytes" * 200)
    refused(cli(chain, "S001", "restore", str(garbage)), "garbage.db")
    chain.hq.stop()
    refused(cli(chain, "hq", "restore", str(backups["S001"])), "a store's (edge) database", "HQ's")

    assert not list(db.parent.glob("*.before-restore-*")) and not list(Path(hq_db(chain)).parent.glob("*.before-restore-*"))
    no_leftovers(db.parent)
    assert replica_state(db) == before

    # A change HQ has not acknowledged (HQ is away) that the backup lacks is not thrown away without --force.
    late = add_customer(chain, "S001", "Late")
    refused(cli(chain, "S001", "restore", str(backups["S001"])), "1 change(s) HQ has not acknowledged", "--force")
    result = cli(chain, "S001", "restore", str(backups["S001"]), "--force")
    assert result.returncode == 0, result.stderr
    assert replica_state(db) == before
    kept = next(db.parent.glob("S001.db.before-restore-????????T??????"))
    assert late["id"] in {json.loads(row[0])["key"] for row in db_query(kept, "SELECT change FROM outbox")}


def test_backup_errors_are_one_line_and_leave_nothing_behind(make_chain, tmp_path):
    chain = make_chain(stores=("S001",))

    refused(cli(chain, "hq", "backup", str(tmp_path / "no" / "such" / "dir") + "/"), "does not exist")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    refused(cli(chain, "hq", "backup", str(a_file / "hq.db")), "is not a directory")
    refused(cli(chain, "hq", "backup", str(hq_db(chain))), "the database itself")

    # A write that fails half-way (a file-size limit of 64 KiB stands in for a full disk).
    full = tmp_path / "full"
    full.mkdir()
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))  # noqa: E731
    result = subprocess.run(lanehub_command("hq", "backup", str(full), "-c", str(chain.hq_config_path)),
                            capture_output=True, text=True, timeout=60, preexec_fn=limit)
    refused(result, "failed", "a write failed")
    assert list(full.iterdir()) == []

    # A database that is not there (a config pointing at the wrong place).
    config = chain.edge_config("S001")
    config["store"]["db"] = str(tmp_path / "nowhere.db")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(dump_toml(config))
    refused(run_lanehub("edge", "backup", str(tmp_path), "-c", str(wrong), check=False), "nowhere.db", "does not exist")
    assert not (tmp_path / "nowhere.db").exists()
    # HQ's database behind an edge config.
    config["store"]["db"] = str(hq_db(chain))
    wrong.write_text(dump_toml(config))
    refused(run_lanehub("edge", "backup", str(tmp_path), "-c", str(wrong), check=False), "HQ's database")
    no_leftovers(tmp_path)


def test_restore_replaces_an_unreadable_database_and_never_reads_its_stale_wal(make_chain, tmp_path):
    chain = make_chain(stores=("S001",))
    copy = backup(chain, "S001", tmp_path)
    chain.edges["S001"].kill()  # no clean close: the WAL and shared memory stay
    db = edge_db(chain, "S001")
    wal = Path(f"{db}-wal")
    assert wal.exists()
    wal.write_bytes(b"\0" * 4096)  # stale; it must not be replayed into the restored file
    db.write_bytes(b"this disk went bad" * 1000)

    result = cli(chain, "S001", "restore", str(copy))
    assert result.returncode == 0, result.stderr
    assert integrity(db) == "ok" and not wal.exists() and not Path(f"{db}-shm").exists()
    kept = next(db.parent.glob("S001.db.before-restore-????????T??????"))
    assert kept.read_bytes().startswith(b"this disk went bad") and Path(f"{kept}-wal").exists()
    chain.edges["S001"].start()
    assert replica_state(db) == wait_converged(chain, 40)


def test_a_backup_that_cannot_fit_is_refused_before_it_starts(tmp_path, monkeypatch):
    from lanehub.runtime import backup as backup_module

    db = HQDatabase(tmp_path / "hq.db", CODES, 100)
    db.create_customer({"first_name": "Ada", "last_name": "Lovelace"}, "test")
    db.close()
    real = os.statvfs

    class Full:
        def __init__(self, path):
            st = real(path)
            self.f_frsize, self.f_bavail = st.f_frsize, 10

    monkeypatch.setattr(backup_module.os, "statvfs", Full)
    with pytest.raises(backup_module.BackupError, match="not enough space in .*MB free"):
        backup_module.backup_database(tmp_path / "hq.db", tmp_path, backup_module.Site("hq"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hq.db"]


def test_backup_and_restore_of_an_hq_on_postgresql_point_to_postgresql_s_tools(tmp_path, postgres_hq_db):
    config = tmp_path / "hq.toml"
    config.write_text(dump_toml({"hq": {"db": postgres_hq_db}}))
    for args in (("backup", str(tmp_path)), ("restore", str(tmp_path / "hq.db"))):
        result = run_lanehub("hq", *args, "-c", str(config), check=False)
        assert result.returncode == 1, result
        assert len(result.stderr.strip().splitlines()) == 1 and "pg_dump" in result.stderr, result.stderr
