"""HQ's own schema steps, after the replica's (lanehub.replication.schema): the
change log whose INTEGER PRIMARY KEY AUTOINCREMENT is the gap-free ``seq``, stores,
code leases, rejections, batches, sessions, samples. Applied in order by
``HQDatabase`` (sqlite-utils Migrations: each step runs once per database).
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from lanehub.domain.users import add_session_schema
from lanehub.replication.card_purge import purge_hq

hq_migrations = Migrations("lanehub.hq")


@hq_migrations()
def m001_hq(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, entity TEXT NOT NULL, "
        "key TEXT NOT NULL, origin TEXT NOT NULL, hlc TEXT NOT NULL, by TEXT NOT NULL, fields TEXT NOT NULL, "
        "received_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX idx_changes_key ON changes (entity, key)")
    db.execute(
        "CREATE TABLE stores (id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at TEXT NOT NULL, "
        "link_state TEXT NOT NULL DEFAULT 'pending', last_contact REAL, pending_up INTEGER NOT NULL DEFAULT 0, "
        "last_seq INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "CREATE TABLE code_blocks (lease TEXT PRIMARY KEY, store TEXT NOT NULL, start INTEGER NOT NULL, "
        "end INTEGER NOT NULL, leased_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_code_blocks_store ON code_blocks (store, start)")
    db.execute(
        "CREATE TABLE rejections (change_id TEXT PRIMARY KEY, store TEXT NOT NULL, entity TEXT NOT NULL, "
        "key TEXT NOT NULL, reason TEXT NOT NULL, change TEXT NOT NULL, rejected_at TEXT NOT NULL, "
        "status TEXT NOT NULL DEFAULT 'open')"
    )
    db.execute(
        "CREATE TABLE possible_duplicates (a TEXT NOT NULL, b TEXT NOT NULL, reason TEXT NOT NULL, "
        "flagged_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', PRIMARY KEY (a, b))"
    )
    # Codes are unique at HQ; edges keep a plain index so a replica can never wedge on one.
    db.execute("CREATE UNIQUE INDEX idx_customers_code_unique ON customers (code) WHERE code != ''")


@hq_migrations()
def m002_coupon_redemption(db: sqlite_utils.Database) -> None:
    # One ticket at a time may hold a coupon; a reservation lapses after a while
    # (a lane that crashed mid-sale must not lock the coupon forever).
    db.execute("CREATE TABLE coupon_reservations (coupon_id TEXT PRIMARY KEY, store TEXT NOT NULL, ticket TEXT NOT NULL, "
               "at REAL NOT NULL)")
    # Redeemed twice (two stores offline with the 'allow' policy): kept for review.
    db.execute("CREATE TABLE coupon_double_uses (coupon_id TEXT NOT NULL, ticket TEXT NOT NULL, store TEXT NOT NULL, "
               "other_ticket TEXT NOT NULL, flagged_at TEXT NOT NULL, PRIMARY KEY (coupon_id, ticket))")


@hq_migrations()
def m003_batches(db: sqlite_utils.Database) -> None:
    # Batches (hq/batches/writes.py) are HQ-local: reviewed here, their effects replicate as normal changes.
    db.execute(
        "CREATE TABLE batches (id INTEGER PRIMARY KEY, "
        "kind TEXT NOT NULL CHECK (kind IN ('new_customers', 'customer_updates')), "
        "status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'executed', 'cancelled')), "
        "description TEXT NOT NULL DEFAULT '', action TEXT NOT NULL DEFAULT '', value TEXT NOT NULL DEFAULT '', "
        "created_at TEXT NOT NULL, created_by TEXT NOT NULL, executed_at TEXT, executed_by TEXT, "
        "cancelled_at TEXT, cancelled_by TEXT, summary TEXT NOT NULL DEFAULT '')"
    )
    db.execute(
        "CREATE TABLE batch_rows (batch_id INTEGER NOT NULL REFERENCES batches (id), row_no INTEGER NOT NULL, "
        "fields TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'new', errors TEXT NOT NULL DEFAULT '{}', "
        "duplicates TEXT NOT NULL DEFAULT '[]', preview TEXT NOT NULL DEFAULT '{}', keep INTEGER NOT NULL DEFAULT 0, "
        "dropped INTEGER NOT NULL DEFAULT 0, result TEXT NOT NULL DEFAULT '', PRIMARY KEY (batch_id, row_no))"
    )
    # An executed or cancelled batch is an audit trail: the database itself refuses
    # to change it, whatever code path tries.
    closed = "'this batch is closed (executed or cancelled) and cannot change'"
    row_closed = "(SELECT status FROM batches WHERE id = {}.batch_id) != 'open'"
    db.execute(f"CREATE TRIGGER batch_rows_closed_insert BEFORE INSERT ON batch_rows "
               f"WHEN {row_closed.format('NEW')} BEGIN SELECT RAISE(ABORT, {closed}); END")
    db.execute(f"CREATE TRIGGER batch_rows_closed_update BEFORE UPDATE ON batch_rows "
               f"WHEN {row_closed.format('OLD')} OR {row_closed.format('NEW')} BEGIN SELECT RAISE(ABORT, {closed}); END")
    db.execute(f"CREATE TRIGGER batch_rows_closed_delete BEFORE DELETE ON batch_rows "
               f"WHEN {row_closed.format('OLD')} BEGIN SELECT RAISE(ABORT, {closed}); END")
    db.execute(f"CREATE TRIGGER batches_closed_update BEFORE UPDATE ON batches "
               f"WHEN OLD.status != 'open' BEGIN SELECT RAISE(ABORT, {closed}); END")
    db.execute(f"CREATE TRIGGER batches_closed_delete BEFORE DELETE ON batches "
               f"WHEN OLD.status != 'open' BEGIN SELECT RAISE(ABORT, {closed}); END")


@hq_migrations()
def m004_batch_events(db: sqlite_utils.Database) -> None:
    # Who added, fixed, dropped or kept which row of a batch, and when: append-only.
    db.execute("CREATE TABLE batch_events (id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL REFERENCES batches (id), "
               "at TEXT NOT NULL, by TEXT NOT NULL, action TEXT NOT NULL, row_no INTEGER, detail TEXT NOT NULL DEFAULT '')")
    db.execute("CREATE INDEX idx_batch_events_batch ON batch_events (batch_id, id)")
    db.execute("CREATE TRIGGER batch_events_closed_insert BEFORE INSERT ON batch_events "
               "WHEN (SELECT status FROM batches WHERE id = NEW.batch_id) != 'open' "
               "BEGIN SELECT RAISE(ABORT, 'this batch is closed (executed or cancelled) and cannot change'); END")
    for verb in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER batch_events_no_{verb.lower()} BEFORE {verb} ON batch_events "
                   "BEGIN SELECT RAISE(ABORT, 'the batch history is never rewritten'); END")


@hq_migrations()
def m005_web_sessions(db: sqlite_utils.Database) -> None:
    # Web sessions end on logout and when HQ changes a user's session_epoch (lanehub.domain.users).
    add_session_schema(db)


@hq_migrations()
def m006_purge_payment_cards(db: sqlite_utils.Database) -> None:
    # Payment card numbers kept before every entry refused them (lanehub.domain.payment_cards).
    # The erasure is an HQ change per card (number masked, card deactivated) so every
    # replica, catch-up and snapshot loses the number too; the log is masked (lanehub.replication.card_purge).
    purge_hq(db.conn)


@hq_migrations()
def m007_store_samples(db: sqlite_utils.Database) -> None:
    # Each store's lag and outbox depth over time, for the stores page's charts:
    # a sample a minute at most (and on a change of state), kept a week (hq/samples.py).
    db.execute("CREATE TABLE store_samples (store TEXT NOT NULL, at REAL NOT NULL, state TEXT NOT NULL, "
               "lag INTEGER NOT NULL, pending_up INTEGER NOT NULL, PRIMARY KEY (store, at))")
    db.execute("CREATE INDEX idx_store_samples_at ON store_samples (at)")
    # The stores page's sales per store per day reads the last 30 days of sales.
    db.execute("CREATE INDEX IF NOT EXISTS idx_sales_closed_at ON sales (closed_at, store)")


@hq_migrations()
def m008_change_audience(db: sqlite_utils.Database) -> None:
    # Who receives each logged change (lanehub.protocol.routes, D45): "" every store,
    # else the one store (a sale: its own). Sales logged before are given their store;
    # stores that had every sale keep what they have.
    db.execute("ALTER TABLE changes ADD COLUMN audience TEXT NOT NULL DEFAULT ''")
    db.execute("UPDATE changes SET audience = coalesce((SELECT store FROM sales WHERE sales.id = changes.key), '') "
               "WHERE entity = 'sale'")


@hq_migrations()
def m009_hq_broker_users(db: sqlite_utils.Database) -> None:
    # Each HQ process has a broker user of its own (its client id, with the HQ broker's
    # use_username_as_clientid): it registers itself here at start, and the broker's
    # password and ACL files give every one HQ's rights (docs/scaling.md).
    db.execute("CREATE TABLE hq_broker_users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
               "registered_at TEXT NOT NULL)")
