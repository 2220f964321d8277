"""HQ's authoritative database: apply, validate, sequence, lease codes.

Every write (a store's change or an operator's) applies to the replica and
appends to the ``changes`` log, whose INTEGER PRIMARY KEY AUTOINCREMENT is
the gap-free global ``seq``, in one transaction (docs/protocol.md).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hq.config import code_format
from hq.duplicates import flag_duplicates
from hq.publisher import notify_changes
from hq.storage import IntegrityErrors, connect_hq, migrate_hq
from hq.wake import wake_service
from lanehub.domain.cards import add_card
from lanehub.domain.codes import CodeFormat
from lanehub.domain.customer_updates import check_extra, write_customer_update
from lanehub.domain.extra_fields import PREFIX, value_key, with_extras, write_extras
from lanehub.domain.model import CUSTOMER_DEFAULTS, ENTITIES, STORE_WRITABLE, ValidationError, checked_customer_write
from lanehub.domain.ownership import refuse_owned
from lanehub.domain.payment_cards import redact
from lanehub.domain.purchase_summaries import summary_of
from lanehub.domain.references import refuse_unknown_rate
from lanehub.protocol import hlc as hlc_mod
from lanehub.protocol.acl import broker_password_hash, broker_password_matches, new_password
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.hlc import now_iso, site_clock
from lanehub.protocol.routes import EVERY_STORE, audience, route_of
from lanehub.protocol.sync import Rejection
from lanehub.protocol.topics import TopicError, check_id
from lanehub.replication.replica import Replica
from lanehub.replication.schema import Meta
from lanehub.replication.sqlite import dialect_of, transaction

ORIGIN = "hq"
# A store's change that may only be early (an edit whose create is still on its
# way): neither applied nor rejected; the store resends it until it applies.
DEFER = object()
MAX_CLOCK_SKEW_MS = 10 * 60 * 1000  # a store clock this far ahead is refused, or its edits would win for hours


@dataclass
class ApplyOutcome:
    """What HQ did with one change from a store."""

    change_id: str
    ok: bool
    reason: str = ""
    entity: str = ""
    key: str = ""
    record: dict | None = None
    clocks: dict | None = None
    deferred: bool = False

    def rejection(self) -> Rejection:
        """What the store's ack says of a refused change."""
        return Rejection(id=self.change_id, reason=self.reason, entity=self.entity, key=self.key,
                         record=self.record, clocks=self.clocks)


class HQDatabase:
    def __init__(self, path: str | Path, codes: CodeFormat, block_size: int = 100, *, migrations: bool = True,
                 wake: bool = True):
        """``migrations=False``: the schema is known to be current (a web request, after
        the app brought it up to date at start). ``wake``: after a commit that logged a
        change, tell the running HQ service to publish it (hq/wake.py); the service's
        own writer, which publishes itself, does not."""
        self.path = str(path)
        self.codes = codes
        self.block_size = block_size
        self.conn = connect_hq(self.path)
        self._logged = False  # a change logged since the last commit
        self._postgres = dialect_of(self.conn) == "postgresql"
        self._notified = -1  # the transaction whose commit will NOTIFY (PostgreSQL)
        self._wake = wake and not self._postgres  # PostgreSQL: NOTIFY instead of the wake socket
        if self._wake:
            self.conn.after_commit.append(self._woken)
        if migrations:
            migrate_hq(self.conn)
        self.replica = Replica(self.conn)
        self.meta = Meta(self.conn)
        last = self.conn.execute("SELECT max(hlc) FROM changes").fetchone()[0]
        # One clock for HQ's writer, reader and exporter (lanehub.protocol.hlc.site_clock).
        self.clock = site_clock(self.path, last or hlc_mod.ZERO)

    @classmethod
    def from_config(cls, config, *, migrations: bool = True) -> "HQDatabase":
        """HQ's database as hq.toml names it: the one way HQ's CLI, pages and benchmarks open it."""
        return cls(config["hq"]["db"], code_format(config), config["codes"]["block_size"], migrations=migrations)

    def _woken(self) -> None:
        if self._logged:
            self._logged = False
            wake_service(self.path)

    def close(self) -> None:
        self.conn.close()

    # --- sequence -----------------------------------------------------------------

    def head(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

    def _log(self, change: Change) -> int:
        """Append an applied change to the log, with its audience (the record as HQ now holds it)."""
        to = audience(change.entity, self.replica.get(change.entity, change.key)) if route_of(change.entity) != EVERY_STORE else ""
        # seq is the next number inside the writer's transaction (writers are serialized on
        # both backends), so the log is gap-free and in commit order across HQ processes.
        seq = self.conn.execute(
            "INSERT INTO changes (seq, id, entity, key, origin, hlc, by, fields, received_at, audience) "
            "VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM changes), ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (change.id, change.entity, change.key, change.origin, change.hlc, change.by,
             json.dumps(change.fields, separators=(",", ":")), time.time(), to),
        ).fetchone()[0]
        if self._postgres:
            # Whichever HQ process publishes hears of it at commit (hq/publisher.py), once per transaction.
            if self._notified != self.conn.transactions or not self.conn.in_transaction:
                notify_changes(self.conn)
                self._notified = self.conn.transactions
        elif self._wake:
            self._logged = True
            if not self.conn.in_transaction:  # committed already (a write outside a transaction)
                self._woken()
        return seq

    def changes_since(self, from_seq: int, limit: int = 1000) -> list[Change]:
        rows = self.conn.execute(
            "SELECT seq, id, entity, key, origin, hlc, by, fields FROM changes WHERE seq >= ? ORDER BY seq LIMIT ?",
            (from_seq, limit),
        ).fetchall()
        return [Change(r["id"], r["entity"], r["key"], r["origin"], r["hlc"], r["by"], json.loads(r["fields"]), r["seq"]) for r in rows]

    def down_page(self, from_seq: int, limit: int = 1000) -> list[tuple[Change, str]]:
        """A page of the log from ``from_seq`` with each change's audience ("" every store)."""
        rows = self.conn.execute(
            "SELECT seq, id, entity, key, origin, hlc, by, fields, audience FROM changes WHERE seq >= ? ORDER BY seq LIMIT ?",
            (from_seq, limit),
        ).fetchall()
        return [(Change(r["id"], r["entity"], r["key"], r["origin"], r["hlc"], r["by"], json.loads(r["fields"]), r["seq"]),
                 r["audience"]) for r in rows]

    def changes_for_store(self, store: str, from_seq: int, limit: int = 1000) -> tuple[list[Change], int]:
        """(the changes from ``from_seq`` that go to ``store``, the last seq they cover):
        a store's catch-up page. A change for another store is covered, not sent."""
        head = self.head()  # read first: every seq up to it is in the log already
        rows = self.conn.execute(
            "SELECT seq, id, entity, key, origin, hlc, by, fields FROM changes "
            "WHERE seq >= ? AND audience IN ('', ?) ORDER BY seq LIMIT ?", (from_seq, store, limit),
        ).fetchall()
        changes = [Change(r["id"], r["entity"], r["key"], r["origin"], r["hlc"], r["by"], json.loads(r["fields"]), r["seq"])
                   for r in rows]
        if len(changes) == limit:
            return changes, changes[-1].seq or 0
        return changes, max(head, changes[-1].seq or 0) if changes else max(head, from_seq - 1)

    def changes_for(self, entity: str, key: str) -> list[Change]:
        rows = self.conn.execute(
            "SELECT seq, id, entity, key, origin, hlc, by, fields FROM changes WHERE entity = ? AND key = ? ORDER BY seq",
            (entity, key),
        ).fetchall()
        return [Change(r["id"], r["entity"], r["key"], r["origin"], r["hlc"], r["by"], json.loads(r["fields"]), r["seq"]) for r in rows]

    # --- HQ's own writes --------------------------------------------------------------

    def write(self, entity: str, key: str, fields: dict[str, Any], by: str) -> Change:
        change = Change(new_id(), entity, key, ORIGIN, self.clock.now(), by, fields)
        buyer = self._buyer(change)
        self.replica.apply(change)
        self._log(change)
        self._after_sale(change, buyer)
        return change

    def _buyer(self, change: Change) -> str:
        """Before a sale's change: its customer (whose summary may lose the sale)."""
        if change.entity != "sale":
            return ""
        row = self.conn.execute("SELECT customer_id FROM sales WHERE id = ?", (change.key,)).fetchone()
        return (row[0] or "") if row else ""

    def _after_sale(self, change: Change, buyer_before: str) -> None:
        """A sale applied: its customer's purchase summary (and the one it was
        tracked away from) rewritten from HQ's sales, for every store (D45)."""
        if change.entity != "sale":
            return
        row = self.conn.execute("SELECT customer_id FROM sales WHERE id = ?", (change.key,)).fetchone()
        for customer_id in dict.fromkeys(filter(None, (row[0] if row else "", buyer_before))):
            purchases = json.dumps(summary_of(self.conn, customer_id), separators=(",", ":"))
            current = self.replica.get("purchase_summary", customer_id)
            if current is None or current["purchases"] != purchases:
                self.write("purchase_summary", customer_id, {"customer_id": customer_id, "purchases": purchases}
                           if current is None else {"purchases": purchases}, "hq")

    def create_customer(self, fields: dict[str, Any], by: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = checked_customer_write(fields, self.codes, new=True)
        refuse_unknown_rate(self.conn, fields)
        extra = check_extra(self, extra)
        with transaction(self.conn):
            key = self.insert_customer(fields, by)
            write_extras(self, {"id": key}, extra, by)
        created = self.replica.get("customer", key)
        assert created is not None  # just written, in the transaction above
        return created

    def insert_customer(self, fields: dict[str, Any], by: str) -> str:
        """A new customer with the next permanent code, inside the caller's
        transaction, from already checked fields; returns its id."""
        key = new_id()
        stamp = now_iso()
        record = dict(CUSTOMER_DEFAULTS) | fields | {
            "code": self.codes.format(self._take_numbers(1)), "origin_store": "", "created_at": stamp,
            "created_by": by, "updated_at": stamp, "updated_by": by,
        }
        self.write("customer", key, record, by)
        flag_duplicates(self.conn, key)
        return key

    def update_customer(self, key: str, fields: dict[str, Any], by: str,
                        extra: dict[str, Any] | None = None, only_changed: bool = False) -> dict[str, Any]:
        fields = checked_customer_write(fields, self.codes, new=False)
        extra = check_extra(self, extra)
        with transaction(self.conn):
            current = self.replica.get("customer", key)
            if current is None:
                raise KeyError(key)
            if write_customer_update(self, current, fields, extra, by, now_iso(), only_changed):
                flag_duplicates(self.conn, key)
        updated = self.replica.get("customer", key)
        assert updated is not None  # updated in the transaction above (accepted records are never deleted)
        return updated

    def find_customer(self, ref: str) -> dict[str, Any] | None:
        return self.replica.find_customer(ref)

    def add_card(self, customer_id: str, number: str, kind: str, by: str) -> dict[str, Any]:
        """Give a customer a card (``lanehub.domain.cards.add_card``)."""
        return add_card(self, customer_id, number, kind, by, error_field="number")

    # --- codes ---------------------------------------------------------------------

    def _take_numbers(self, count: int) -> int:
        """Reserve ``count`` consecutive code numbers; called inside a transaction."""
        first = self.meta.get_int("next_code", 1)
        self.meta.set("next_code", first + count)
        return first

    def lease_block(self, store: str, lease: str, max_outstanding: int | None = None) -> dict[str, int]:
        """A block of numbers for a store. Idempotent by ``lease`` so a lost reply
        does not waste a block when the store asks again. A store that already holds
        ``max_outstanding`` blocks not used up is refused (PermissionError, the reason)."""
        with transaction(self.conn):
            row = self.conn.execute("SELECT store, start, [end] FROM code_blocks WHERE lease = ?", (lease,)).fetchone()
            if row:
                if row["store"] != store:
                    raise PermissionError("lease id belongs to another store")
                return {"start": row["start"], "end": row["end"]}
            if max_outstanding is not None and (held := self.outstanding_blocks(store)) >= max_outstanding:
                raise PermissionError(
                    f"{store} holds {held} code blocks not used up yet, and at most {max_outstanding} code blocks "
                    "may be outstanding (hq.toml [codes] max_outstanding_blocks): give provisional codes until one is")
            start = self._take_numbers(self.block_size)
            end = start + self.block_size - 1
            self.conn.execute(
                "INSERT INTO code_blocks (lease, store, start, [end], leased_at) VALUES (?, ?, ?, ?, ?)",
                (lease, store, start, end, now_iso()),
            )
        return {"start": start, "end": end}

    def outstanding_blocks(self, store: str) -> int:
        """The store's blocks not used up: HQ has no customer with the block's last
        code yet (a store takes its numbers in order, so the last one comes last).
        A block whose last customer HQ refused stays outstanding; raise the cap or
        let the store go provisional."""
        ends = self.conn.execute("SELECT [end] FROM code_blocks WHERE store = ?", (store,)).fetchall()
        return sum(1 for (end,) in ends
                   if self.conn.execute("SELECT 1 FROM customers WHERE code = ?", (self.codes.format(end),)).fetchone() is None)

    def _leased_to(self, store: str, number: int) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM code_blocks WHERE store = ? AND start <= ? AND [end] >= ?", (store, number, number)
        ).fetchone() is not None

    # --- store changes ------------------------------------------------------------------

    def apply_store_changes(self, store: str, changes: list[Any]) -> list[ApplyOutcome]:
        """Apply a batch from ``store``: each change on its own savepoint, so an
        invalid one is rejected and the ones behind it still apply."""
        outcomes = []
        with transaction(self.conn):
            for raw in changes:
                outcomes.append(self._apply_one(store, raw))
            self.conn.execute("UPDATE stores SET last_contact = ? WHERE id = ?", (time.time(), store))
        return outcomes

    def _apply_one(self, store: str, raw: Any) -> ApplyOutcome:
        try:
            change = Change.from_dict(raw)
        except PayloadError as exc:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            change_id = raw_id if isinstance(raw_id, str) else ""
            return self._reject(store, None, change_id, f"malformed change: {exc}", raw)
        if self.conn.execute("SELECT 1 FROM changes WHERE id = ?", (change.id,)).fetchone():
            return ApplyOutcome(change.id, True, entity=change.entity, key=change.key)  # redelivered
        earlier = self.conn.execute("SELECT reason FROM rejections WHERE change_id = ?", (change.id,)).fetchone()
        if earlier:
            return self._outcome_rejected(change, earlier["reason"])
        reason = self._check(store, change)
        if reason is DEFER:
            return ApplyOutcome(change.id, False, "waiting for the record it changes", change.entity, change.key, deferred=True)
        if reason:
            return self._reject(store, change, change.id, reason, change.to_dict())
        self.conn.execute("SAVEPOINT change")
        try:
            self.clock.observe(change.hlc)
            buyer = self._buyer(change)
            self.replica.apply(change)
            self._log(change)
            self._after_sale(change, buyer)
            if change.entity == "customer":
                self._after_customer(store, change)
            elif change.entity == "coupon_use":
                self._after_coupon_use(store, change)
        except IntegrityErrors as exc:
            self.conn.execute("ROLLBACK TO change")
            self.conn.execute("RELEASE change")
            return self._reject(store, change, change.id, f"conflicts with an existing record: {exc}", change.to_dict())
        self.conn.execute("RELEASE change")
        return ApplyOutcome(change.id, True, entity=change.entity, key=change.key)

    def _check(self, store: str, change: Change):
        """Why HQ refuses a store's change, None to apply it, or DEFER."""
        if change.origin != store:
            return f"origin {change.origin!r} does not match the store {store!r} that sent it"
        if change.entity not in STORE_WRITABLE:
            return f"a store cannot write {change.entity} records"
        ahead = hlc_mod.stamp_ms(change.hlc) - int(time.time() * 1000)
        if ahead > MAX_CLOCK_SKEW_MS:
            return f"the store's clock is {ahead // 1000}s ahead of HQ; fix the box's time (NTP)"
        spec = ENTITIES[change.entity]
        errors = spec.check_fields(change.fields, self.codes)
        if errors:
            return "invalid: " + str(ValidationError(errors))
        current = self.replica.get(change.entity, change.key)
        if current is None:
            missing = [name for name in spec.required if not str(change.fields.get(name, "")).strip()]
            if not any(name in change.fields for name in spec.immutable):
                # Not a create (those carry the record's immutable identity: code,
                # card number) but an edit of a record HQ has not seen: its create may
                # be behind it, resent after a broker dropped it. Wait, unless refused.
                return self._unless_rejected(change.entity, change.key)
            if missing:
                return f"a new {change.entity} needs {', '.join(missing)}"
            return self._check_new(store, change)
        # Empty is a value too: an HQ customer's origin_store is "" and stays so (a store
        # claiming it would own the record's history).
        for name in spec.immutable:
            if name in change.fields and change.fields[name] != current[name]:
                return f"{name} cannot be changed ({current[name]!r} -> {change.fields[name]!r})"
        if change.entity == "customer":
            return self._check_customer_edit(change, current)
        if change.entity == "customer_extra":
            return self._check_extra(change, current)
        if change.entity == "card":
            return self._check_card(change, current)
        if change.entity in ("sale", "address"):
            return self._customer_known(change.fields.get("customer_id"))
        return None

    def _check_customer_edit(self, change: Change, current: dict) -> str | None:
        """A store may not set the external key, nor change what an external system owns."""
        if "external_id" in change.fields and change.fields["external_id"] != current["external_id"]:
            return "external_id is set by imports only"
        try:
            refuse_owned(self.conn, "customer", current, change.fields)
        except ValidationError as exc:
            return str(exc)
        return None

    def _check_extra(self, change: Change, current: dict | None):
        """One value record per customer and name (its key says which), for a
        known customer, never a value an external system owns."""
        merged = (current or dict(ENTITIES["customer_extra"].defaults)) | change.fields
        if change.key != value_key(merged["customer_id"], merged["name"]):
            return "an extra value's key must be made from its customer and name"
        customer = self.replica.get("customer", merged["customer_id"])
        if customer is None:
            return self._unless_rejected("customer", merged["customer_id"])
        try:
            refuse_owned(self.conn, "customer", with_extras(self.conn, customer), {PREFIX + merged["name"]: merged["value"]})
        except ValidationError as exc:
            return str(exc)
        return None

    def _unless_rejected(self, entity: str, key: str):
        refused = self.conn.execute(
            "SELECT reason FROM rejections WHERE entity = ? AND key = ? LIMIT 1", (entity, key)).fetchone()
        return f"the {entity} it changes was refused by HQ ({refused['reason']})" if refused else DEFER

    def _check_new(self, store: str, change: Change) -> str | None:
        if change.entity == "customer":
            code = change.fields["code"]
            if change.fields.get("origin_store", store) != store:
                return f"origin_store must be {store!r}"
            number = self.codes.number(code)
            if number is not None and not self._leased_to(store, number):
                return f"code {code} was not leased to {store}"
            if number is None and self.codes.provisional_store(code) != store:
                return f"provisional code {code} does not belong to {store}"
            if self.find_customer(code):
                return f"code {code} is already in use"
            if change.fields.get("external_id"):
                return "external_id is set by imports only"
            return None
        if change.entity == "coupon_use":
            if change.fields.get("store") != store:
                return f"a coupon use's store must be {store!r}"
            if not self.replica.get("coupon", change.fields.get("coupon_id", "")):
                return "no such coupon"
            return None
        if change.entity == "customer_extra":
            return self._check_extra(change, None)
        if change.entity == "address":
            return self._customer_known(change.fields.get("customer_id"))
        if change.entity in ("sale", "consent"):
            if change.fields.get("store") != store:
                return f"a {change.entity}'s store must be {store!r}"
            return self._customer_known(change.fields.get("customer_id"))
        return self._check_card(change, None)

    def _customer_known(self, customer_id: str | None):
        """None when the customer a record points to is here (or none is named);
        DEFER while its create may still be on its way."""
        if customer_id and not self.replica.get("customer", customer_id):
            return self._unless_rejected("customer", customer_id)
        return None

    def _check_card(self, change: Change, current: dict | None) -> str | None:
        merged = (current or dict(ENTITIES["card"].defaults)) | change.fields
        if not self.replica.get("customer", merged["customer_id"]):
            if self._unless_rejected("customer", merged["customer_id"]) is DEFER:
                return DEFER
            return f"card for a customer HQ refused ({merged['customer_id']})"
        if merged["active"]:
            other = self.conn.execute(
                "SELECT id FROM cards WHERE number = ? AND active = 1 AND id != ?", (merged["number"], change.key)
            ).fetchone()
            if other:
                return f"card {merged['number']} already belongs to another customer"
        return None

    def _after_customer(self, store: str, change: Change) -> None:
        code = change.fields.get("code", "")
        if code and self.codes.provisional_store(code) == store:
            # Replace the provisional code with a permanent one; the old code
            # stays a resolvable alias. Both are HQ changes, so every replica gets them.
            permanent = self.codes.format(self._take_numbers(1))
            self.write("code_alias", new_id(), {"alias": code, "customer_id": change.key}, "hq:codes")
            self.write("customer", change.key, {"code": permanent}, "hq:codes")
        flag_duplicates(self.conn, change.key)

    def _after_coupon_use(self, store: str, change: Change) -> None:
        """A redemption arrived: the reservation is done; a second ticket that
        redeemed the same coupon (offline, 'allow' policy) is flagged."""
        coupon_id, ticket = change.fields.get("coupon_id", ""), change.fields.get("ticket", "")
        self.conn.execute("DELETE FROM coupon_reservations WHERE coupon_id = ? AND ticket = ?", (coupon_id, ticket))
        other = self.conn.execute("SELECT ticket FROM coupon_uses WHERE coupon_id = ? AND ticket != ? ORDER BY rid LIMIT 1",
                                  (coupon_id, ticket)).fetchone()
        if other:
            self.conn.execute(
                "INSERT OR IGNORE INTO coupon_double_uses (coupon_id, ticket, store, other_ticket, flagged_at) "
                "VALUES (?, ?, ?, ?, ?)", (coupon_id, ticket, store, other[0], now_iso()))

    def _reject(self, store: str, change: Change | None, change_id: str, reason: str, raw: Any) -> ApplyOutcome:
        entity = change.entity if change else ""
        key = change.key if change else ""
        if change_id:
            self.conn.execute(
                "INSERT OR IGNORE INTO rejections (change_id, store, entity, key, reason, change, rejected_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                # Kept for the store's admin, never with a payment card number in it.
                (change_id, store, entity, key, redact(reason), redact(json.dumps(raw, default=str))[:20000], now_iso()),
            )
        if change is None:
            return ApplyOutcome(change_id, False, reason)
        return self._outcome_rejected(change, reason)

    def _outcome_rejected(self, change: Change, reason: str) -> ApplyOutcome:
        record = self.replica.get(change.entity, change.key)
        clocks = self.replica.clocks(change.entity, change.key) if record else None
        return ApplyOutcome(change.id, False, reason, change.entity, change.key, record, clocks)

    def rejections(self, store: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM rejections" + (" WHERE store = ?" if store else "") + " ORDER BY rejected_at"
        return [dict(row) for row in self.conn.execute(sql, (store,) if store else ())]

    def retry_rejection(self, change_id: str) -> ApplyOutcome:
        """Apply a refused store change again (its cause fixed meanwhile): the
        rejection is forgotten and the change goes through the normal checks."""
        row = self.conn.execute("SELECT store, change FROM rejections WHERE change_id = ?", (change_id,)).fetchone()
        if row is None:
            raise KeyError(change_id)
        with transaction(self.conn):
            self.conn.execute("DELETE FROM rejections WHERE change_id = ?", (change_id,))
        return self.apply_store_changes(row["store"], [json.loads(row["change"])])[0]

    # --- stores ------------------------------------------------------------------------

    def add_store(self, store: str) -> str:
        """Register a store; returns its broker password (shown once, stored hashed)."""
        try:
            check_id(store, "store id")
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        if store.lower() == ORIGIN:
            raise ValueError("'hq' is reserved")
        if store in self.hq_broker_users():
            raise ValueError(f"{store!r} is an HQ process's broker user")
        password = new_password()
        with transaction(self.conn):
            if self.conn.execute("SELECT 1 FROM stores WHERE id = ?", (store,)).fetchone():
                raise ValueError(f"store {store} is already registered")
            self.conn.execute(
                "INSERT INTO stores (id, password_hash, created_at) VALUES (?, ?, ?)",
                (store, broker_password_hash(password), now_iso()),
            )
        return password

    def reset_store_password(self, store: str) -> str:
        password = new_password()
        with transaction(self.conn):
            cursor = self.conn.execute("UPDATE stores SET password_hash = ? WHERE id = ?", (broker_password_hash(password), store))
            if cursor.rowcount == 0:
                raise KeyError(store)
        return password

    def stores(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM stores ORDER BY id")]

    def store_ids(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT id FROM stores ORDER BY id")]

    def register_hq_broker_user(self, username: str, password: str) -> bool:
        """An HQ process's own broker user (its client id); returns whether the broker's
        files need writing again (a user new, or with a new password)."""
        with transaction(self.conn):
            if self.is_store(username):
                raise ValueError(f"HQ's broker user {username!r} is a store's id: give this HQ process another")
            row = self.conn.execute("SELECT password_hash FROM hq_broker_users WHERE username = ?", (username,)).fetchone()
            if row is not None and broker_password_matches(password, row[0]):
                return False
            self.conn.execute("INSERT INTO hq_broker_users (username, password_hash, registered_at) VALUES (?, ?, ?) "
                              "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, "
                              "registered_at = excluded.registered_at",
                              (username, broker_password_hash(password), now_iso()))
        return True

    def hq_broker_users(self) -> dict[str, str]:
        """Every HQ process's broker user: {username: password hash}."""
        return {row[0]: row[1] for row in self.conn.execute("SELECT username, password_hash FROM hq_broker_users")}

    def store_hashes(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.conn.execute("SELECT id, password_hash FROM stores")}

    def is_store(self, store: str) -> bool:
        return self.conn.execute("SELECT 1 FROM stores WHERE id = ?", (store,)).fetchone() is not None

    def record_status(self, store: str, state: str, pending_up: int, last_seq: int, ts: float) -> None:
        """A store's status. Its last will (offline, no figures, no stamp) only
        changes the link state: the last known outbox depth and seq stay. A stamp
        that is no number or far ahead (NaN, inf, a wrong clock) counts as now: it
        would pin ``last_contact`` in the future, which never moves back."""
        if ts and not (math.isfinite(ts) and ts <= time.time() + MAX_CLOCK_SKEW_MS / 1000):
            ts = time.time()
        with transaction(self.conn):
            if state == "online" or ts:
                self.conn.execute(
                    "UPDATE stores SET link_state = ?, pending_up = ?, last_seq = ?, "
                    "last_contact = max(coalesce(last_contact, 0), ?) WHERE id = ?",
                    (state, pending_up, last_seq, ts or time.time(), store),
                )
            else:
                self.conn.execute("UPDATE stores SET link_state = ? WHERE id = ?", (state, store))

    def duplicates(self, status: str = "open") -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(
            "SELECT * FROM possible_duplicates WHERE status = ? ORDER BY flagged_at", (status,))]
