"""The schema shared by HQ and edge replicas (connections: ``lanehub.replication.sqlite``).

Schema steps are sqlite-utils ``Migrations``; each site adds its own set on
top of ``replica_migrations``. The hot path uses raw ``sqlite3`` cursors
(docs/benchmarks.md); sqlite-utils is for schema and bulk work.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

from lanehub.domain.model import ENTITIES, EntitySpec


def migrate(conn: sqlite3.Connection, *sets: Migrations) -> None:
    db = sqlite_utils.Database(conn)
    for migrations in sets:
        migrations.apply(db)


def column_type(spec: EntitySpec, name: str) -> str:
    return "INTEGER" if name in spec.bools else "TEXT"


def create_entity_table(db: sqlite_utils.Database, spec: EntitySpec) -> None:
    columns = ", ".join(
        [f"[{name}] {column_type(spec, name)}" for name in spec.fields]
        + [f"[{name}] TEXT NOT NULL DEFAULT ''" for name in spec.derived_columns]
    )
    # rid is an explicit INTEGER PRIMARY KEY so FTS rowids survive VACUUM.
    db.execute(
        f"CREATE TABLE [{spec.table}] (rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, {columns}, "
        "_clocks TEXT NOT NULL DEFAULT '{}')"
    )
    create_indexes(db.conn, spec)
    if spec.fts:
        db.execute(
            f"CREATE VIRTUAL TABLE [{spec.table}_fts] USING fts5({', '.join(spec.fts)}, "
            f"content='{spec.table}', content_rowid='rid', tokenize='unicode61 remove_diacritics 2', prefix='2 3')"
        )


def _index_name(spec: EntitySpec, columns: tuple[str, ...]) -> str:
    return f"idx_{spec.table}_{'_'.join(columns)}"


def create_indexes(conn: sqlite3.Connection, spec: EntitySpec) -> None:
    for columns in spec.indexes:
        conn.execute(f"CREATE INDEX IF NOT EXISTS [{_index_name(spec, columns)}] ON [{spec.table}] "
                     f"({', '.join(f'[{c}]' for c in columns)})")


def drop_indexes(conn: sqlite3.Connection, spec: EntitySpec) -> None:
    """Bulk loads into an empty table are several times faster without its
    secondary indexes; ``create_indexes`` builds them afterwards in one pass."""
    for columns in spec.indexes:
        conn.execute(f"DROP INDEX IF EXISTS [{_index_name(spec, columns)}]")


replica_migrations = Migrations("lanehub.replica")


@replica_migrations()
def m001_entities(db: sqlite_utils.Database) -> None:
    for name in ("customer", "card", "code_alias"):
        create_entity_table(db, ENTITIES[name])
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@replica_migrations()
def m002_catalogue_and_sales(db: sqlite_utils.Database) -> None:
    for name in ("product", "barcode", "rate", "rate_line", "specific_price", "sale"):
        create_entity_table(db, ENTITIES[name])


@replica_migrations()
def m003_consents(db: sqlite_utils.Database) -> None:
    create_entity_table(db, ENTITIES["consent"])


@replica_migrations()
def m004_households_and_coupons(db: sqlite_utils.Database) -> None:
    for name in ("household", "coupon", "coupon_use"):
        create_entity_table(db, ENTITIES[name])
    # Databases made before households got the column here; new ones have it from m001.
    if "household_id" not in db["customers"].columns_dict:
        db.execute("ALTER TABLE customers ADD COLUMN household_id TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS idx_customers_household_id ON customers (household_id)")


@replica_migrations()
def m005_users_and_roles(db: sqlite_utils.Database) -> None:
    for name in ("user", "role"):
        create_entity_table(db, ENTITIES[name])


@replica_migrations()
def m006_merged_customers(db: sqlite_utils.Database) -> None:
    # A duplicate merged into a survivor keeps its record and code and points here.
    if "merged_into" not in db["customers"].columns_dict:
        db.execute("ALTER TABLE customers ADD COLUMN merged_into TEXT")


@replica_migrations()
def m007_api_tokens(db: sqlite_utils.Database) -> None:
    if "api_token_hash" not in db["users"].columns_dict:
        db.execute("ALTER TABLE users ADD COLUMN api_token_hash TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS idx_users_api_token_hash ON users (api_token_hash)")


@replica_migrations()
def m008_external_keys_and_field_rules(db: sqlite_utils.Database) -> None:
    # Imports key customers by the external system's number; rules say which fields it owns.
    if "external_id" not in db["customers"].columns_dict:
        db.execute("ALTER TABLE customers ADD COLUMN external_id TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS idx_customers_external_id ON customers (external_id)")
    create_entity_table(db, ENTITIES["field_rule"])


@replica_migrations()
def m009_extra_fields(db: sqlite_utils.Database) -> None:
    for name in ("extra_field", "customer_extra"):
        create_entity_table(db, ENTITIES[name])


@replica_migrations()
def m010_addresses(db: sqlite_utils.Database) -> None:
    create_entity_table(db, ENTITIES["address"])


@replica_migrations()
def m011_purchase_summaries(db: sqlite_utils.Database) -> None:
    # A customer's recent purchases in every store (lanehub.domain.purchase_summaries, D45).
    create_entity_table(db, ENTITIES["purchase_summary"])


class Meta:
    """Small persistent key/value settings of a site (last seq, clock, leases...)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def get_int(self, key: str, default: int = 0) -> int:
        value = self.get(key)
        return int(value) if value is not None else default

    def set(self, key: str, value: object) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )
