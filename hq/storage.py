"""HQ's database, on a SQLite file or on PostgreSQL, opened and migrated the one way.

``[hq] db`` is a path (SQLite, the default) or a ``postgresql://`` URL
(docs/decisions.md D50). Both give a connection with the sqlite3 API that HQ's
writers, the replica and the domain operations are written against.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from hq.migrations import hq_migrations
from hq.pg_schema import migrate_postgres
from lanehub.replication.postgres import PostgresConnection
from lanehub.replication.schema import migrate, replica_migrations
from lanehub.replication.sqlite import connect, dialect_of


def is_postgres(target: object) -> bool:
    """Whether ``[hq] db`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def connect_hq(target: str) -> Any:
    """A connection to HQ's database (``lanehub.replication.sqlite.Connection`` or
    ``lanehub.replication.postgres.PostgresConnection``)."""
    if is_postgres(target):
        return PostgresConnection(target)
    return connect(target)


def migrate_hq(conn: Any) -> None:
    """Bring HQ's schema up to date, on either backend."""
    if dialect_of(conn) == "postgresql":
        migrate_postgres(conn)
    else:
        migrate(conn, replica_migrations, hq_migrations)


# What a broken constraint raises, on either backend.
IntegrityErrors: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
