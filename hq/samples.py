"""Each store's lag behind HQ and outbox depth over time, for the stores page's
charts (hq/web/stores.py): HQ's service samples every store at most once a
minute, and at once when its link state changes; a week is kept."""

from __future__ import annotations

import time
from typing import Any

from hq.db import HQDatabase
from lanehub.replication.sqlite import transaction

SAMPLE_EVERY = 60.0  # seconds between two samples of a store whose state did not change
SAMPLES_KEPT = 7 * 24 * 3600  # seconds a sample is kept


def sample_store(db: HQDatabase, store: str, now: float | None = None) -> bool:
    """Record the store's lag (HQ's head minus its last applied seq) and outbox
    depth, unless it was sampled less than SAMPLE_EVERY ago in the same state.
    Returns whether it recorded one."""
    now = time.time() if now is None else now
    with transaction(db.conn):
        row = db.conn.execute("SELECT link_state, last_seq, pending_up, last_contact FROM stores WHERE id = ?",
                              (store,)).fetchone()
        if row is None or row["last_contact"] is None:  # not provisioned yet: nothing to chart
            return False
        last = db.conn.execute("SELECT at, state FROM store_samples WHERE store = ? ORDER BY at DESC LIMIT 1",
                               (store,)).fetchone()
        if last is not None and last["state"] == row["link_state"] and now - last["at"] < SAMPLE_EVERY:
            return False
        db.conn.execute("INSERT INTO store_samples (store, at, state, lag, pending_up) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (store, at) DO UPDATE SET state = excluded.state, lag = excluded.lag, "
                        "pending_up = excluded.pending_up",
                        (store, now, row["link_state"], max(db.head() - row["last_seq"], 0), row["pending_up"]))
    return True


def prune_samples(db: HQDatabase, now: float | None = None) -> int:
    """Forget samples older than SAMPLES_KEPT; returns how many went."""
    with transaction(db.conn):
        cursor = db.conn.execute("DELETE FROM store_samples WHERE at < ?",
                                 ((time.time() if now is None else now) - SAMPLES_KEPT,))
    return cursor.rowcount


def store_samples(db: HQDatabase, since: float) -> dict[str, list[dict[str, Any]]]:
    """Every store's samples from ``since`` on, oldest first, by store."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in db.conn.execute("SELECT * FROM store_samples WHERE at >= ? ORDER BY store, at", (since,)):
        found.setdefault(row["store"], []).append(dict(row))
    return found
