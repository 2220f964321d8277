"""Which HQ process publishes ``sync/down``, and how it hears of new changes.

Several HQ processes may share one PostgreSQL database (docs/scaling.md). They
all apply the stores' batches (a shared subscription gives each batch to one of
them), but exactly one publishes the change log downstream, so every store sees
``seq`` in order: the holder of the *publisher lease*, a session-level advisory
lock on a connection of its own. When its process dies, PostgreSQL ends the
session and frees the lock; another process takes it within ``RETRY`` seconds
and publishes from the head (stores fill any gap from catch-up, as after any HQ
restart). The same connection LISTENs on ``CHANNEL``: every HQ writer — the
services', the CLI's, the pages' — NOTIFYs in its transaction, so the publisher
hears of a commit at once, whichever process made it (no polling).

On SQLite there is one HQ process per database (D16): the lease is always held
and writes made elsewhere wake it over a local socket (hq/wake.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from hq.storage import is_postgres

log = logging.getLogger(__name__)

CHANNEL = "lanehub_changes"
PUBLISHER_LOCK = 0x6C616E65687570  # not the writer lock (lanehub.replication.postgres.WRITER_LOCK)
RETRY = 1.0  # seconds between tries for a free lease, and before reconnecting a lost connection
# A partitioned holder's session is found dead within this (TCP keepalives), so the lease
# moves on even when the process does not die.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2}


def notify_changes(conn: object) -> None:
    """In a writer's transaction on PostgreSQL: tell the publisher once it commits."""
    conn.execute(f"SELECT pg_notify('{CHANNEL}', '')")  # type: ignore[attr-defined]


class PublisherLease:
    """``held`` while this process is the one that publishes downstream.

    ``on_taken`` runs when the lease is taken (publish from the head),
    ``on_change`` when another commit may have logged changes."""

    def __init__(self, target: str, on_taken: Callable[[], object], on_change: Callable[[], object], name: str = "hq"):
        self.target = target
        self.on_taken = on_taken
        self.on_change = on_change
        self.name = name
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "PublisherLease":
        if not is_postgres(self.target):
            self.held = True
            log.info("%s: took the publisher lease: this process publishes sync/down (SQLite: the only one)", self.name)
            self.on_taken()
            return self
        self._thread = threading.Thread(target=self._run, name="hq-publisher-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.target, autocommit=True, **KEEPALIVE) as conn:  # type: ignore[arg-type]
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._hold(conn)
            except psycopg.Error as exc:
                if self.held:
                    log.warning("%s: lost the publisher lease (%s); another HQ process takes it", self.name, exc)
                else:
                    log.warning("%s: publisher lease connection failed (%s); retrying", self.name, exc)
            finally:
                self.held = False
            self._stop.wait(RETRY)

    def _hold(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            if not self.held:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (PUBLISHER_LOCK,)).fetchone()
                if row and row[0]:
                    self.held = True
                    log.info("%s: took the publisher lease: this process publishes sync/down", self.name)
                    self.on_taken()
            heard = False
            for _ in conn.notifies(timeout=RETRY):
                heard = True
                break  # one call covers every commit so far
            if heard:
                if self.held:
                    self.on_change()
            else:
                conn.execute("SELECT 1")  # a dead server is found here, not only when something is heard
