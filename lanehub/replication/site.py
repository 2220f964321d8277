"""What every site's database is, for the code both sites share.

HQ's ``HQDatabase`` (hq/db.py: replica + the sequenced change log) and a
store's ``EdgeDatabase`` (edge/db.py: replica + the outbox to HQ) differ in
where a change goes after it is applied, and agree on this much, which is all
the shared domain operations (cards, customer edits, extra fields, sales, the
customer pages) may use.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from lanehub.domain.codes import CodeFormat
from lanehub.protocol.change import Change
from lanehub.replication.replica import Replica
from lanehub.replication.schema import Meta


class SiteDatabase(Protocol):
    conn: sqlite3.Connection  # WAL, synchronous=FULL (lanehub.replication.sqlite.connect)
    replica: Replica  # the site's copy of every replicated record
    meta: Meta

    @property
    def codes(self) -> CodeFormat | None:
        """The customer code format: HQ's own; a store's once HQ has sent it (None before)."""
        ...

    def write(self, entity: str, key: str, fields: dict[str, Any], by: str) -> Change:
        """Apply a change made here (per-field last writer wins) and send it on: at HQ into
        the change log with its seq, at a store into the outbox to HQ. The caller holds
        the transaction (``lanehub.replication.sqlite.transaction``); the change is durable
        when that transaction commits, and not acknowledged before."""
        ...

    def find_customer(self, ref: str) -> dict[str, Any] | None:
        """A customer by code, alias, card or id; None when there is none."""
        ...

    def close(self) -> None: ...
