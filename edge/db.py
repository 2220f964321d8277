"""The edge's database: the full local replica, the outbox, leased code blocks.

Every local write updates the replica and appends its change to the outbox
in one transaction; the outbox row is deleted only when HQ acks it (or the
change comes back down with its seq). Nothing is reported done before the
transaction commits (docs/protocol.md).
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from lanehub.domain.cards import add_card
from lanehub.domain.codes import CodeFormat
from lanehub.domain.customer_updates import check_extra, write_customer_update
from lanehub.domain.extra_fields import write_extras
from lanehub.domain.model import CUSTOMER_DEFAULTS, ENTITIES, ValidationError, checked_customer_write
from lanehub.domain.payment_cards import redact
from lanehub.domain.references import refuse_unknown_rate
from lanehub.domain.users import add_session_schema
from lanehub.protocol import hlc as hlc_mod
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.hlc import now_iso, site_clock
from lanehub.protocol.sync import Rejection
from lanehub.replication.card_purge import purge_edge
from lanehub.replication.replica import Replica
from lanehub.replication.schema import Meta, create_indexes, drop_indexes, migrate, replica_migrations
from lanehub.replication.sqlite import connect, transaction

edge_migrations = Migrations("lanehub.edge")


@edge_migrations()
def m001_edge(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE outbox (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, change TEXT NOT NULL, "
        "created_at REAL NOT NULL, last_sent REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("CREATE TABLE code_blocks (lease TEXT PRIMARY KEY, start INTEGER NOT NULL, end INTEGER NOT NULL, next INTEGER NOT NULL)")
    db.execute(
        "CREATE TABLE rejections (change_id TEXT PRIMARY KEY, entity TEXT NOT NULL, key TEXT NOT NULL, "
        "reason TEXT NOT NULL, change TEXT NOT NULL, rejected_at TEXT NOT NULL)"
    )
    # Lane requests already carried out, by the sender's id: a redelivered
    # "create" must not make a second customer.
    db.execute("CREATE TABLE lane_requests (id TEXT PRIMARY KEY, key TEXT NOT NULL, at REAL NOT NULL)")


@edge_migrations()
def m002_tickets(db: sqlite_utils.Database) -> None:
    # A lane's counter (ticket numbers survive restarts), its current ticket and
    # the notices of the last event (a refused command, an unknown code).
    db.execute(
        "CREATE TABLE lanes (lane TEXT PRIMARY KEY, last_n INTEGER NOT NULL, current TEXT NOT NULL DEFAULT '', "
        "notices TEXT NOT NULL DEFAULT '[]', cause TEXT NOT NULL DEFAULT '')"
    )
    db.execute(
        "CREATE TABLE tickets (ticket TEXT PRIMARY KEY, lane TEXT NOT NULL, n INTEGER NOT NULL, status TEXT NOT NULL, "
        "customer_id TEXT NOT NULL DEFAULT '', coupon TEXT NOT NULL DEFAULT '', opened_at TEXT NOT NULL, "
        "closed_at TEXT NOT NULL DEFAULT '', by TEXT NOT NULL DEFAULT '')"
    )
    db.execute("CREATE INDEX idx_tickets_lane_status ON tickets (lane, status)")
    db.execute(
        "CREATE TABLE ticket_lines (ticket TEXT NOT NULL, line INTEGER NOT NULL, product_id TEXT NOT NULL, "
        "sku TEXT NOT NULL, barcode TEXT NOT NULL, description TEXT NOT NULL, brand TEXT NOT NULL, size TEXT NOT NULL, "
        "tax_rate TEXT NOT NULL, qty TEXT NOT NULL, unit_price TEXT NOT NULL, retail_price TEXT NOT NULL, "
        "price_source TEXT NOT NULL, amount TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (ticket, line))"
    )
    # Scan, card and command ids already carried out (QoS 1 redelivers).
    db.execute("CREATE TABLE lane_events (id TEXT PRIMARY KEY, lane TEXT NOT NULL, at REAL NOT NULL)")
    db.execute("CREATE INDEX idx_lane_events_at ON lane_events (at)")
    # Receipts: kept until the printer bridge reports them printed ('email': a
    # no-paper customer's receipt, kept for e-mail and never sent to a printer).
    db.execute(
        "CREATE TABLE print_jobs (job TEXT PRIMARY KEY, ticket TEXT NOT NULL, lane TEXT NOT NULL, device TEXT NOT NULL, "
        "receipt TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_sent REAL NOT NULL DEFAULT 0, "
        "printer_status TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, "
        "printed_at REAL)"
    )
    db.execute("CREATE INDEX idx_print_jobs_status ON print_jobs (status)")


@edge_migrations()
def m003_receipt_email(db: sqlite_utils.Database) -> None:
    # An address given at the till for one e-receipt: kept with that receipt
    # only, never on the customer (GDPR: no consent to keep it).
    db.execute("ALTER TABLE print_jobs ADD COLUMN email TEXT NOT NULL DEFAULT ''")


@edge_migrations()
def m004_ticket_coupon(db: sqlite_utils.Database) -> None:
    # How the ticket's coupon was accepted: 'online' (reserved at HQ) or 'offline'.
    db.execute("ALTER TABLE tickets ADD COLUMN coupon_mode TEXT NOT NULL DEFAULT ''")


@edge_migrations()
def m005_devices_and_settings(db: sqlite_utils.Database) -> None:
    # The last retained status of every device bridge, for the store page.
    db.execute("CREATE TABLE device_status (device TEXT PRIMARY KEY, kind TEXT NOT NULL, lane TEXT NOT NULL, "
               "state TEXT NOT NULL, detail TEXT NOT NULL, updated_at REAL NOT NULL)")
    # Store settings changed on the store page; edge.toml gives the defaults.
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_by TEXT NOT NULL, "
               "updated_at TEXT NOT NULL)")


@edge_migrations()
def m006_last_read(db: sqlite_utils.Database) -> None:
    # When a scanner or card reader last sent something, for the lanes page.
    db.execute("ALTER TABLE device_status ADD COLUMN last_read REAL")


# A sale's ticket number (``STORE-LANE-N``: N), as ``edge.lane.tickets`` reads it. The
# index below is on this very expression, so a lane's highest sale is one seek.
SALE_TICKET_NUMBER = "CAST(substr(ticket, length(store) + length(lane) + 3) AS INTEGER)"


@edge_migrations()
def m007_ticket_numbers(db: sqlite_utils.Database) -> None:
    # A lane's next ticket number goes on after its highest sale in the replica and
    # its highest ticket (a restored or replaced box), looked up on every new ticket.
    db.execute(f"CREATE INDEX IF NOT EXISTS idx_sales_lane_number ON sales (store, lane, {SALE_TICKET_NUMBER})")
    db.execute("CREATE INDEX IF NOT EXISTS idx_tickets_lane_n ON tickets (lane, n)")


@edge_migrations()
def m008_variable_measure(db: sqlite_utils.Database) -> None:
    # The price a scale or GS1 label fixed for a line ('' = none): the line's amount,
    # which re-pricing for a customer must keep (edge.lane.tickets).
    db.execute("ALTER TABLE ticket_lines ADD COLUMN label_price TEXT NOT NULL DEFAULT ''")


@edge_migrations()
def m009_mail_outbox(db: sqlite_utils.Database) -> None:
    # E-mailed receipts (edge.lane.mail), queued in the close's transaction and kept
    # after sending: status queued | sent | failed, with the server's last answer.
    db.execute(
        "CREATE TABLE mail_outbox (id TEXT PRIMARY KEY, job TEXT NOT NULL, ticket TEXT NOT NULL, recipient TEXT NOT NULL, "
        "subject TEXT NOT NULL, receipt TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "last_error TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, next_attempt REAL NOT NULL, sent_at REAL)"
    )
    db.execute("CREATE INDEX idx_mail_outbox_due ON mail_outbox (status, next_attempt)")
    db.execute("CREATE INDEX idx_mail_outbox_created ON mail_outbox (created_at)")


@edge_migrations()
def m010_web_sessions(db: sqlite_utils.Database) -> None:
    # The store page's own sessions; a user's session_epoch comes from HQ (lanehub.domain.users).
    add_session_schema(db)


@edge_migrations()
def m010_purge_payment_cards(db: sqlite_utils.Database) -> None:
    # Payment card numbers kept before every entry refused them (lanehub.domain.payment_cards):
    # masked and deactivated here at once, unsent ones dropped (lanehub.replication.card_purge).
    purge_edge(db.conn)


@edge_migrations()
def m011_sync_samples(db: sqlite_utils.Database) -> None:
    # The store's lag behind HQ (NULL: HQ's head not known) and outbox depth over
    # time, for the sync page's chart: a sample a minute at most (edge.hq_link), kept 7 days.
    db.execute("CREATE TABLE sync_samples (at REAL PRIMARY KEY, hq_link TEXT NOT NULL, lag INTEGER, "
               "pending_up INTEGER NOT NULL)")


@edge_migrations()
def m012_lane_seq(db: sqlite_utils.Database) -> None:
    # A lane's event count: each ticket change carries it, so a lane client applies
    # them in order and knows when it missed one (edge.lane.ticket_state, D48).
    db.execute("ALTER TABLE lanes ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")


SNAPSHOT_STAMP_RE = re.compile(r"\d{13}-\d{6}")


class NotReady(RuntimeError):
    """The store has no snapshot from HQ yet, so it cannot create records."""


class PastDeadline(RuntimeError):
    """A lane write reached its stamp after the lane's deadline: it is not made."""


def _seq_of(change: Change) -> int:
    # Downstream changes come from HQ's log, which numbers every one.
    assert change.seq is not None, f"downstream change {change.id} without its seq"
    return change.seq


class EdgeDatabase:
    def __init__(self, path: str | Path, store: str, *, migrations: bool = True):
        """``migrations=False``: the schema is known to be current (a web request, after
        the app brought it up to date at start)."""
        self.path = str(path)
        self.store = store
        self.conn = connect(self.path)
        if migrations:
            migrate(self.conn, replica_migrations, edge_migrations)
        self.replica = Replica(self.conn)
        self.meta = Meta(self.conn)
        # One clock per store, shared by the sync and lane workers (lanehub.protocol.hlc.site_clock).
        self.clock = site_clock(self.path, self._stored_hlc())
        self._deadline = 0.0  # while a lane write runs: when its lane stopped waiting

    @classmethod
    def from_config(cls, config, *, migrations: bool = True) -> "EdgeDatabase":
        """The store's database as edge.toml names it: the one way the edge's service, CLI and page open it."""
        return cls(config["store"]["db"], config["store"]["id"], migrations=migrations)

    @contextmanager
    def until(self, deadline: float):
        """Writes inside are refused (PastDeadline) once ``deadline`` has passed when
        they are stamped; 0: none. Checked at the stamp itself, so an edge frozen
        between a request's first check and its write cannot apply it late."""
        self._deadline = deadline
        try:
            yield self
        finally:
            self._deadline = 0.0

    def close(self) -> None:
        self.conn.close()

    def _stored_hlc(self) -> str:
        """The last stamp any writer of this store persisted (ZERO before the first)."""
        stored = self.meta.get("hlc")
        return stored if stored is not None else hlc_mod.ZERO

    # --- state -----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self.meta.get_int("last_seq")

    @property
    def ready(self) -> bool:
        return self.meta.get("snapshot_done") == "1"

    @property
    def codes(self) -> CodeFormat | None:
        prefix = self.meta.get("code_prefix")
        return CodeFormat(prefix, self.meta.get_int("code_width")) if prefix else None

    def set_codes(self, prefix: str, width: int) -> None:
        with transaction(self.conn):
            self.meta.set("code_prefix", prefix)
            self.meta.set("code_width", width)

    def pending_up(self) -> int:
        return self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]

    # --- local writes ------------------------------------------------------------------

    def write(self, entity: str, key: str, fields: dict[str, Any], by: str) -> Change:
        """Apply a local change and queue it for HQ; the caller holds the transaction."""
        # The stamp persisted by any writer (another process too: the edge CLI) is
        # read under the write lock, so no two changes of this store share a stamp
        # and none sorts before a change this store already applied.
        self.clock.observe(self._stored_hlc())
        late = time.time() - self._deadline
        if self._deadline and late > 0:
            raise PastDeadline(f"not applied: the request reached the store {late:.1f}s after its deadline")
        change = Change(new_id(), entity, key, self.store, self.clock.now(), by, fields)
        self.replica.apply(change)
        self.conn.execute(
            "INSERT INTO outbox (id, change, created_at) VALUES (?, ?, ?)", (change.id, change.to_json(), time.time())
        )
        self.meta.set("hlc", change.hlc)
        return change

    def create_customer(self, fields: dict[str, Any], by: str, request_id: str = "",
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create a customer with its final code (a leased number, or a provisional
        code when the store is out of numbers); usable at once. A repeated
        ``request_id`` returns the customer the first request made."""
        codes = self.codes
        if codes is None or not self.ready:
            raise NotReady("this store has not received its first snapshot from HQ yet")
        if request_id:
            row = self.conn.execute("SELECT key FROM lane_requests WHERE id = ?", (request_id,)).fetchone()
            if row:
                record = self.replica.get("customer", row[0])
                if record is None:
                    raise NotReady("this request's customer was refused by HQ (see the store's rejections)")
                return record
        fields = checked_customer_write(fields, codes, new=True)
        refuse_unknown_rate(self.conn, fields)
        extra = check_extra(self, extra)
        key = new_id()
        stamp = now_iso()
        with transaction(self.conn):
            if request_id:
                self.conn.execute("INSERT INTO lane_requests (id, key, at) VALUES (?, ?, ?)", (request_id, key, time.time()))
            record = dict(CUSTOMER_DEFAULTS) | fields | {
                "code": self._take_code(codes), "origin_store": self.store,
                "created_at": stamp, "created_by": by, "updated_at": stamp, "updated_by": by,
            }
            self.write("customer", key, record, by)
            write_extras(self, {"id": key}, extra, by)
        created = self.replica.get("customer", key)
        assert created is not None  # just written, in the transaction above
        return created

    def update_customer(self, key: str, fields: dict[str, Any], by: str,
                        extra: dict[str, Any] | None = None, only_changed: bool = False) -> dict[str, Any]:
        codes = self.codes or CodeFormat()
        fields = checked_customer_write(fields, codes, new=False)
        extra = check_extra(self, extra)
        with transaction(self.conn):
            current = self.replica.get("customer", key)
            if current is None:
                raise KeyError(key)
            write_customer_update(self, current, fields, extra, by, now_iso(), only_changed)
        updated = self.replica.get("customer", key)
        assert updated is not None  # updated in the transaction above
        return updated

    def find_customer(self, ref: str) -> dict[str, Any] | None:
        return self.replica.find_customer(ref)

    # --- lane request ids: every lane write with an id is carried out once -----------

    def lane_request_key(self, request_id: str) -> str | None:
        """The record a lane request with this id already wrote (its customer), or None."""
        if not request_id:
            return None
        row = self.conn.execute("SELECT key FROM lane_requests WHERE id = ?", (request_id,)).fetchone()
        return row[0] if row else None

    def remember_lane_request(self, request_id: str, key: str) -> None:
        """Inside the write's transaction, so the id is kept exactly when the write is."""
        self.conn.execute("INSERT INTO lane_requests (id, key, at) VALUES (?, ?, ?)", (request_id, key, time.time()))

    def add_card(self, customer_id: str, number: str, kind: str, by: str) -> dict[str, Any]:
        """Give a customer a card (``lanehub.domain.cards.add_card``)."""
        return add_card(self, customer_id, number, kind, by, error_field="card")

    def record_consent(self, customer_id: str, channel: str, granted: bool, lane: str, user: str) -> dict[str, Any]:
        """Keep a grant or revocation as a new history record (never an overwrite)."""
        fields = {"customer_id": customer_id, "channel": channel, "granted": granted, "at": now_iso(),
                  "store": self.store, "lane": lane, "user": user}
        # A consent has no code: the format is only there for the checks' signature.
        errors = ENTITIES["consent"].check_fields(fields, self.codes or CodeFormat())
        if errors:
            raise ValidationError(errors)
        key = new_id()
        with transaction(self.conn):
            self.write("consent", key, fields, user or f"lane:{lane}")
        recorded = self.replica.get("consent", key)
        assert recorded is not None  # just written, in the transaction above
        return recorded

    # --- codes -------------------------------------------------------------------------

    def _take_code(self, codes: CodeFormat) -> str:
        row = self.conn.execute("SELECT lease, next FROM code_blocks WHERE next <= end ORDER BY start LIMIT 1").fetchone()
        if row:
            self.conn.execute("UPDATE code_blocks SET next = next + 1 WHERE lease = ?", (row["lease"],))
            return codes.format(row["next"])
        # The counter may be behind codes HQ already knows from this store (a restored
        # backup, a replaced box): skip every code the replica holds as a customer's
        # code or as an alias, as HQ would refuse it as already in use.
        number = self.meta.get_int("provisional_next", 1)
        code = codes.provisional(self.store, number)
        while self.replica.find_customer(code) is not None:
            number += 1
            code = codes.provisional(self.store, number)
        self.meta.set("provisional_next", number + 1)
        return code

    def codes_left(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(end - next + 1), 0) FROM code_blocks WHERE next <= end").fetchone()[0]

    def pending_lease(self) -> str:
        """The lease id of the block being asked for, kept so a retry after a crash
        or a lost reply asks for the same block (HQ answers it idempotently)."""
        with transaction(self.conn):
            lease = self.meta.get("pending_lease")
            if not lease:
                lease = new_id()
                self.meta.set("pending_lease", lease)
        return lease

    def add_block(self, lease: str, start: int, end: int) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO code_blocks (lease, start, end, next) VALUES (?, ?, ?, ?)", (lease, start, end, start)
            )
            if self.meta.get("pending_lease") == lease:
                self.meta.set("pending_lease", "")

    # --- upstream ------------------------------------------------------------------------

    def outbox_due(self, retry_after: float, limit: int = 200) -> list[dict]:
        """Changes never sent, or sent ``retry_after`` seconds ago without an ack."""
        rows = self.conn.execute(
            "SELECT id, change FROM outbox WHERE last_sent = 0 OR last_sent <= ? ORDER BY n LIMIT ?",
            (time.time() - retry_after, limit),
        ).fetchall()
        return [json.loads(row["change"]) for row in rows]

    def mark_sent(self, ids: list[str]) -> None:
        with transaction(self.conn):
            self.conn.executemany(
                "UPDATE outbox SET last_sent = ?, attempts = attempts + 1 WHERE id = ?", [(time.time(), i) for i in ids]
            )

    def acked(self, ids: list[str]) -> None:
        with transaction(self.conn):
            self.conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def rejected(self, rejection: Rejection | dict[str, Any]) -> None:
        """HQ refused a change: keep it with the reason, and take HQ's version of the record.
        ``rejection`` as a StoreMessage has it (a dict is read as HQ sends one)."""
        if isinstance(rejection, dict):
            rejection = Rejection.from_dict(rejection)
        with transaction(self.conn):
            row = self.conn.execute("SELECT change FROM outbox WHERE id = ?", (rejection.id,)).fetchone()
            self.conn.execute("DELETE FROM outbox WHERE id = ?", (rejection.id,))
            entity, key = rejection.entity or "", rejection.key or ""
            self.conn.execute(
                "INSERT OR IGNORE INTO rejections (change_id, entity, key, reason, change, rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
                (rejection.id, entity, key, redact(str(rejection.reason)),
                 redact(row["change"]) if row else "{}", now_iso()),
            )
            if entity in ENTITIES and key:
                if not rejection.record:
                    self.replica.remove(entity, key)  # HQ never accepted it
                elif row:
                    # Undo only the fields the refused change still holds: a later
                    # change already applied here (from HQ or from us) stays.
                    refused = Change.from_json(row["change"])
                    clocks = rejection.clocks or {}
                    self.replica.take_fields(entity, key, refused, rejection.record, clocks)
                    self._observe_all(clocks.values())
                    self.meta.set("hlc", self.clock.last)

    def rejections(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM rejections ORDER BY rejected_at")]

    # --- downstream --------------------------------------------------------------------------

    def apply_down(self, changes: list[Change], first: int = 0, through: int = 0) -> bool:
        """Apply sequenced changes in seq order. Returns False when a gap shows that
        something is missing (the caller then catches up from HQ's log).

        ``first``..``through``: the seqs the changes cover (lanehub.protocol.routes):
        a seq in the range that is not among them went to another store. Without
        them (0), the changes cover only themselves and must follow on."""
        with transaction(self.conn):
            last = self.last_seq
            complete = True
            if through and first > last + 1:  # a range starting past what this store has: a gap
                return False
            for change in sorted(changes, key=_seq_of):
                if _seq_of(change) <= last:
                    continue
                if through and _seq_of(change) > through:
                    break
                if not through and change.seq != last + 1:
                    complete = False
                    break
                self._observe(change.hlc)
                self.replica.apply(change)
                if change.origin == self.store:
                    self.conn.execute("DELETE FROM outbox WHERE id = ?", (change.id,))
                last = _seq_of(change)
            if through:
                last = max(last, through)
            self.meta.set("last_seq", last)
            self.meta.set("hlc", self.clock.last)
        return complete

    def _observe(self, stamp: str) -> None:
        # A remote clock far in the future must not drag ours with it (HQ refuses
        # such changes from stores; this guards against a bad HQ clock).
        if hlc_mod.stamp_ms(stamp) <= time.time() * 1000 + 10 * 60 * 1000:
            self.clock.observe(stamp)

    def _observe_all(self, stamps) -> None:
        """Observe the latest of field clocks (``"<hlc>|<origin>"``, or "" for never)."""
        latest = max((s.split("|", 1)[0] for s in stamps if isinstance(s, str) and s), default="")
        if hlc_mod.STAMP_RE.match(latest):
            self._observe(latest)

    # --- snapshot ----------------------------------------------------------------------------

    def begin_snapshot(self) -> None:
        """Start (or restart) the first snapshot from empty replica tables."""
        with transaction(self.conn):
            for spec in ENTITIES.values():
                drop_indexes(self.conn, spec)  # rebuilt in one pass by finish_snapshot
                self.conn.execute(f"DELETE FROM [{spec.table}]")
                if spec.fts:
                    self.conn.execute(f"INSERT INTO [{spec.table}_fts] ([{spec.table}_fts]) VALUES ('delete-all')")
            self.meta.set("snapshot_done", "0")

    @contextmanager
    def bulk_load(self):
        """``synchronous=NORMAL`` while a snapshot loads (no fsync per page): nothing of it
        counts before ``finish_snapshot``, whose FULL commit syncs the WAL with every
        frame before it (and a checkpoint syncs the WAL before it copies any)."""
        self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield self
        finally:
            self.conn.execute("PRAGMA synchronous=FULL")

    def load_snapshot_file(self, path: str | Path, entities: list[str], hlc: str) -> list[str]:
        """Insert the tables of HQ's snapshot file (hq/snapshot_file.py) into the empty
        replica tables, one ``INSERT ... SELECT`` each. Returns the entities loaded: an
        entity the file lacks, or whose columns this version would read differently,
        is left to snapshot pages."""
        self.conn.execute("ATTACH ? AS snapshot_file", (str(path),))
        loaded = []
        try:
            with transaction(self.conn):
                tables = {row[0] for row in self.conn.execute(
                    "SELECT name FROM snapshot_file.sqlite_master WHERE type = 'table'")}
                for name in entities:
                    spec = ENTITIES.get(name) if isinstance(name, str) else None
                    if spec is None or spec.table not in tables:
                        continue
                    columns = Replica.snapshot_columns(spec)
                    have = {row[1] for row in self.conn.execute(f"PRAGMA snapshot_file.table_info([{spec.table}])")}
                    if not have.issuperset(columns):  # an older HQ's table: pages map its columns
                        continue
                    listed = ", ".join(f"[{c}]" for c in columns)
                    self.conn.execute(f"INSERT INTO main.[{spec.table}] ({listed}) "
                                      f"SELECT {listed} FROM snapshot_file.[{spec.table}] ORDER BY rowid")
                    loaded.append(name)
                if isinstance(hlc, str) and hlc_mod.STAMP_RE.match(hlc):  # a lane edit right after sorts after it
                    self._observe(hlc)
                    self.meta.set("hlc", self.clock.last)
        finally:
            self.conn.execute("DETACH snapshot_file")
        return loaded

    def load_snapshot_page(self, entity: str, columns: list[str], rows: list[list]) -> None:
        with transaction(self.conn):
            self.replica.load_rows(entity, columns, rows)
            if "_clocks" in columns:  # a lane edit right after the snapshot sorts after it
                at = columns.index("_clocks")
                self._observe_all(SNAPSHOT_STAMP_RE.findall(" ".join(str(row[at]) for row in rows)))
                self.meta.set("hlc", self.clock.last)

    def finish_snapshot(self, head: int) -> None:
        with transaction(self.conn):
            for spec in ENTITIES.values():
                create_indexes(self.conn, spec)
            self.replica.rebuild_fts()
            self.meta.set("last_seq", head)
            self.meta.set("snapshot_done", "1")
