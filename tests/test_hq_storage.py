"""HQ's storage on PostgreSQL: the same schema as on SQLite, the same SQL, one writer at a time."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from hq.db import HQDatabase
from hq.pg_schema import STEPS
from hq.storage import connect_hq
from lanehub.domain.codes import CodeFormat
from lanehub.domain.search import search_customers
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp
from lanehub.replication.postgres import translate


def sqlite_columns(conn) -> dict[str, dict[str, tuple[str, bool]]]:
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE '%_fts%' AND name != '_sqlite_migrations'")]
    affinity = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}
    return {table: {row["name"]: (affinity[row["type"]], bool(row["notnull"]) or bool(row["pk"]))
                    for row in conn.execute(f"PRAGMA table_info([{table}])")} for table in tables}


def postgres_columns(conn) -> dict[str, dict[str, tuple[str, bool]]]:
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for row in conn.execute(
            "SELECT c.table_name, c.column_name, c.data_type, c.domain_name, c.is_nullable FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name != 'lanehub_migrations'"):
        kind = "text" if row["domain_name"] == "binary_text" else row["data_type"]
        tables.setdefault(row["table_name"], {})[row["column_name"]] = (kind, row["is_nullable"] == "NO")
    return tables


def test_the_postgresql_schema_is_the_sqlite_schema_table_by_table_and_column_by_column(tmp_path, postgres_hq_db):
    sqlite = HQDatabase(tmp_path / "hq.db", CodeFormat(), wake=False)
    pg = HQDatabase(postgres_hq_db, CodeFormat(), wake=False)
    try:
        assert postgres_columns(pg.conn) == sqlite_columns(sqlite.conn)
    finally:
        sqlite.close()
        pg.close()


def test_migrating_twice_or_from_two_processes_at_once_applies_each_step_once(postgres_hq_db):
    errors: list[BaseException] = []

    def open_it():
        try:
            HQDatabase(postgres_hq_db, CodeFormat(), wake=False).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = connect_hq(postgres_hq_db)
    assert [row[0] for row in conn.execute("SELECT name FROM lanehub_migrations ORDER BY name")] == [n for n, _ in STEPS]
    conn.close()


@pytest.mark.parametrize(("sqlite", "postgresql"), [
    ("SELECT [end] FROM code_blocks WHERE store = ?", 'SELECT "end" FROM code_blocks WHERE store = %s'),
    ("INSERT OR IGNORE INTO t (a) VALUES (?)", "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"),
    ("UPDATE s SET at = max(coalesce(at, 0), ?)", "UPDATE s SET at = GREATEST(coalesce(at, 0), %s)"),
    ("SELECT max(seq) FROM changes WHERE x LIKE ?", "SELECT max(seq) FROM changes WHERE x ILIKE %s"),
    ("SELECT '50%?' AS a, '[x]' AS b, ? AS c", "SELECT '50%%?' AS a, '[x]' AS b, %s AS c"),
    ("SELECT sum(CAST(total AS REAL)) FROM sales", "SELECT sum(CAST(total AS DOUBLE PRECISION)) FROM sales"),
])
def test_the_sqlite_spellings_are_rewritten_outside_string_literals(sqlite, postgresql):
    assert translate(sqlite) == postgresql


def change(key: str, **fields) -> Change:
    return Change(str(uuid.uuid4()), "customer", key, "S001", format_stamp(int(time.time() * 1000), 0), "t", fields)


def test_writers_in_several_connections_get_a_gap_free_seq_in_commit_order(postgres_hq_db):
    first = HQDatabase(postgres_hq_db, CodeFormat(), block_size=1000, wake=False)
    first.add_store("S001")
    first.lease_block("S001", "lease-1")
    first.close()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        db = HQDatabase(postgres_hq_db, CodeFormat(), block_size=1000, migrations=False, wake=False)
        try:
            for i in range(25):
                outcomes = db.apply_store_changes("S001", [change(str(uuid.uuid4()), code=f"CUST-{n * 100 + i + 1:05d}",
                                                                  first_name="W", last_name=str(n),
                                                                  origin_store="S001").to_dict()])
                assert all(o.ok for o in outcomes), outcomes
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = HQDatabase(postgres_hq_db, CodeFormat(), wake=False)
    seqs = [row[0] for row in db.conn.execute("SELECT seq FROM changes ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 100
    assert db.replica.count("customer") == 100
    db.close()


def test_customer_search_finds_names_codes_and_e_mail_on_postgresql(postgres_hq_db):
    db = HQDatabase(postgres_hq_db, CodeFormat(), wake=False)
    ada = db.create_customer({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}, "t")
    db.create_customer({"first_name": "Grace", "last_name": "Hopper", "phone": "600 111 222"}, "t")
    db.create_customer({"first_name": "Ada_x", "last_name": "Other"}, "t")
    try:
        assert [c["code"] for c in search_customers(db.conn, "ada love")] == [ada["code"]]
        assert [c["last_name"] for c in search_customers(db.conn, "LOVEL")] == ["Lovelace"]
        assert [c["last_name"] for c in search_customers(db.conn, "ada@exa")] == ["Lovelace"]
        assert [c["last_name"] for c in search_customers(db.conn, "600111")] == ["Hopper"]
        assert [c["last_name"] for c in search_customers(db.conn, ada["code"])] == ["Lovelace"]
        assert search_customers(db.conn, "a_a") == []  # _ is a letter here, not LIKE's wildcard
    finally:
        db.close()
