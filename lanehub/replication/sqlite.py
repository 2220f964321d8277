"""SQLite connections and transactions, the same at HQ and in every store.

Durable before acknowledged: WAL with ``synchronous=FULL``, so a commit is on
disk when it returns. Nothing here knows the schema, so every layer (domain
operations included) can open a transaction without importing it.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Connection(sqlite3.Connection):
    """A sqlite3 connection that runs ``after_commit`` callbacks when a ``transaction``
    commits (HQ tells its running service that there is something to publish)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after_commit: list[Callable[[], None]] = []


def dialect_of(conn: object) -> str:
    """"sqlite", or "postgresql" for HQ's storage on PostgreSQL (lanehub.replication.postgres)."""
    return getattr(conn, "dialect", "sqlite")


def has_table(conn: Any, name: str) -> bool:
    """Whether the database has table ``name`` (on either backend of HQ's storage)."""
    if dialect_of(conn) == "postgresql":
        return bool(conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0])
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def connect(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in WAL mode with full fsync: a commit is on disk when it returns."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=check_same_thread,
                           factory=Connection)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """One write transaction; BEGIN IMMEDIATE so two writers queue instead of deadlocking.
    Inside an open transaction it is a savepoint, so a write path (``create_customer``)
    can run as one step of a larger all-or-nothing write (a batch, an import)."""
    if conn.in_transaction:
        name = f"nested_{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
        for callback in getattr(conn, "after_commit", ()):
            callback()


_savepoints = itertools.count(1)
