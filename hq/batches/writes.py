"""Batches at HQ (Rattail's batches): rows that are made, reviewed, then executed.

Two kinds: ``new_customers`` (rows from a CSV or keyed in; each becomes a
customer) and ``customer_updates`` (rows are existing customers; the batch sets
their rate or payment status, or deactivates them). A batch is open while it is
reviewed: rows are checked again after every change, can be fixed or dropped,
and a flagged possible duplicate can be kept (a person decided it is someone
else). Executing writes every row in one transaction through HQ's normal write
paths (so the changes replicate to every store); an executed or cancelled batch
is closed for good and stays as the audit trail (the database refuses to change
it too: triggers in hq/db.py ``m003_batches``).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from pathlib import Path
from typing import Any

from hq.batches.checks import (
    check_new_customer,
    check_update,
    checked_target,
    code_rows,
    columns_of,
    csv_rows,
    customer_fields,
    in_batch_duplicates,
    read_text,
    similar_customers,
    unknown_fields,
    update_fields,
)
from hq.db import HQDatabase
from hq.merge import dismiss_duplicate
from hq.storage import IntegrityErrors
from lanehub.domain.address_columns import split_address_columns, write_address_columns
from lanehub.domain.entity import MAX_TEXT, ValidationError
from lanehub.domain.extra_fields import split_extras
from lanehub.domain.payment_cards import find_payment_card, mask, masked_card, redact, refusal
from lanehub.protocol.hlc import now_iso
from lanehub.replication.sqlite import transaction

KINDS = ("new_customers", "customer_updates")
STATUSES = ("open", "executed", "cancelled")
# How people read them (pages, CLI).
KIND_NAMES = {"new_customers": "new customers", "customer_updates": "customer updates"}
ACTION_NAMES = {"set_rate": "set rate", "set_payment_status": "set payment status", "deactivate": "deactivate"}


class BatchError(Exception):
    """A batch verb that cannot be done; the message says why, in one line."""


class BatchClosed(BatchError):
    """The batch is executed or cancelled: it can never change again."""


class NotReady(BatchError):
    """Execution refused: rows are invalid or undecided duplicates (``problems``)."""

    def __init__(self, batch_id: int, problems: list[str]):
        self.problems = problems
        super().__init__(f"batch {batch_id} was not executed: " + "; ".join(problems))


def read_rows(kind: str, source: str | Path | bytes, conn: sqlite3.Connection) -> list[dict[str, str]]:
    """The rows of a CSV for a batch of ``kind`` (a path, its bytes or its text).
    New customers: columns named like customer fields; an unknown column refuses
    the file. Updates: a ``code`` column, or one code per line."""
    text = read_text(source)
    rows = csv_rows(text, columns_of(kind, conn)) if kind == "new_customers" else code_rows(text)
    if not rows:
        raise ValidationError({"file": "has no rows"})
    return rows


class Batches:
    def __init__(self, db: HQDatabase, by: str = ""):
        self.db = db
        self.conn = db.conn
        self.by = by  # who adds, fixes, drops and keeps rows (the batch's history says so)

    # --- reading ---------------------------------------------------------------------------

    def get(self, batch_id: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise BatchError(f"no batch {batch_id}")
        return dict(row)

    # Inside this class the name list is this method from here on, so annotations say builtins.list.
    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        """Batches newest first, each with ``counts``: {row status: number of rows}."""
        if status is not None and status not in STATUSES:
            raise ValidationError({"status": f"must be one of {', '.join(STATUSES)}"})
        where, args = ("", ()) if status is None else ("WHERE status = ?", (status,))
        rows = self.conn.execute(f"SELECT * FROM batches {where} ORDER BY id DESC", args).fetchall()
        counts: dict[int, dict[str, int]] = {}
        for batch_id, row_status, number in self.conn.execute(
                "SELECT batch_id, status, count(*) FROM batch_rows GROUP BY batch_id, status"):
            counts.setdefault(batch_id, {})[row_status] = number
        return [dict(row) | {"counts": counts.get(row["id"], {})} for row in rows]

    def review(self, batch_id: int) -> builtins.list[dict[str, Any]]:
        """Every row with its status, errors, duplicate flags, preview and result.
        An open batch is checked afresh (customers may have changed meanwhile); a
        closed one shows what it was when it closed."""
        batch = self.get(batch_id)
        rows = self._rows(batch_id)
        return self._checked(batch, rows) if batch["status"] == "open" else rows

    # --- making and reviewing ---------------------------------------------------------------

    def new(self, kind: str, by: str, description: str = "", action: str | None = None,
            value: str | None = None) -> int:
        """Start a batch; a customer-updates batch names its action (and value)."""
        if kind not in KINDS:
            raise ValidationError({"kind": f"must be one of {', '.join(KINDS)}"})
        if len(description or "") > MAX_TEXT:
            raise ValidationError({"description": f"is longer than {MAX_TEXT} characters"})
        card = find_payment_card(description or "")
        if card:
            raise ValidationError({"description": refusal(mask(card))})
        if kind == "customer_updates":
            value = checked_target(self.conn, action or "", value)
        elif action or value:
            raise ValidationError({"action": "only a customer-updates batch has an action"})
        with transaction(self.conn):
            batch_id = self.conn.execute(
                "INSERT INTO batches (kind, description, action, value, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (kind, (description or "").strip(), action or "", value or "", now_iso(), by)).fetchone()[0]
        return batch_id

    def add_row(self, batch_id: int, fields: dict[str, Any]) -> int:
        """Key in one row; returns its number."""
        return self.add_rows(batch_id, [fields])[0]

    def load_csv(self, batch_id: int, source: str | Path | bytes) -> builtins.list[int]:
        """Add the rows of a CSV (``read_rows``); returns their numbers."""
        return self.add_rows(batch_id, read_rows(self.get(batch_id)["kind"], source, self.conn))

    def add_rows(self, batch_id: int, rows: builtins.list[dict[str, Any]]) -> builtins.list[int]:
        """Add rows (field -> text); all or none. Returns their numbers."""
        with transaction(self.conn):
            batch = self._open(batch_id)
            for fields in rows:
                unknown_fields(fields, columns_of(batch["kind"], self.conn))
            first = self.conn.execute("SELECT coalesce(max(row_no), 0) + 1 FROM batch_rows WHERE batch_id = ?",
                                      (batch_id,)).fetchone()[0]
            numbers = [first + n for n in range(len(rows))]
            self.conn.executemany(
                "INSERT INTO batch_rows (batch_id, row_no, fields) VALUES (?, ?, ?)",
                [(batch_id, row_no, _json({k: _kept(v) for k, v in fields.items() if str(v).strip()}))
                 for row_no, fields in zip(numbers, rows)])
            self._event(batch_id, "added", None, f"{plural(len(rows), 'row')}: {numbers[0]}-{numbers[-1]}"
                        if len(rows) > 1 else f"row {numbers[0]}" if rows else "no rows")
            self._recheck(batch)
        return numbers

    def fix(self, batch_id: int, row_no: int, fields: dict[str, Any]) -> None:
        """Change fields of a row ("" clears one); it is checked again. A keep mark
        is cleared: it was decided on the old fields."""
        with transaction(self.conn):
            batch = self._open(batch_id)
            unknown_fields(fields, columns_of(batch["kind"], self.conn))
            row = self._row(batch_id, row_no)
            merged = {k: v for k, v in (row["fields"] | {k: _kept(v) for k, v in fields.items()}).items() if v != ""}
            self.conn.execute("UPDATE batch_rows SET fields = ?, keep = 0 WHERE batch_id = ? AND row_no = ?",
                              (_json(merged), batch_id, row_no))
            changed = {k: _kept(v) for k, v in fields.items() if str(row["fields"].get(k, "")) != _kept(v)}
            self._event(batch_id, "fixed", row_no, "; ".join(f"{k} = {str(v).strip()!r}" for k, v in sorted(changed.items())))
            self._recheck(batch)

    def drop(self, batch_id: int, row_no: int, dropped: bool = True) -> None:
        """Leave a row out of the execution (it stays in the batch); ``dropped=False`` takes it back."""
        with transaction(self.conn):
            batch = self._open(batch_id)
            self._row(batch_id, row_no)
            self.conn.execute("UPDATE batch_rows SET dropped = ? WHERE batch_id = ? AND row_no = ?",
                              (int(dropped), batch_id, row_no))
            self._event(batch_id, "dropped" if dropped else "taken back", row_no)
            self._recheck(batch)

    def keep(self, batch_id: int, row_no: int, keep: bool = True) -> None:
        """Create a flagged possible duplicate anyway: a person decided it is someone else."""
        with transaction(self.conn):
            batch = self._open(batch_id)
            checked = {row["row_no"]: row for row in self._checked(batch, self._rows(batch_id))}
            if row_no not in checked:
                raise BatchError(f"batch {batch_id} has no row {row_no}")
            if keep and not checked[row_no]["duplicates"]:
                raise BatchError(f"row {row_no} is not flagged as a possible duplicate: there is nothing to keep")
            self.conn.execute("UPDATE batch_rows SET keep = ? WHERE batch_id = ? AND row_no = ?",
                              (int(keep), batch_id, row_no))
            self._event(batch_id, "kept (not the same person)" if keep else "keep undone", row_no)
            self._recheck(batch)

    def cancel(self, batch_id: int, by: str) -> dict[str, Any]:
        """Close an open batch without doing anything; it stays, read-only."""
        with transaction(self.conn):
            self._open(batch_id)
            self.conn.execute("UPDATE batches SET status = 'cancelled', cancelled_at = ?, cancelled_by = ? WHERE id = ?",
                              (now_iso(), by, batch_id))
        return self.get(batch_id)

    # --- executing ------------------------------------------------------------------------------

    def execute(self, batch_id: int, by: str) -> dict[str, Any]:
        """Do every row that is not dropped, all or nothing; the batch is then closed.
        Refused (``NotReady``) while a row is invalid or an undecided duplicate."""
        with transaction(self.conn):
            batch = self._open(batch_id)
            rows = self._checked(batch, self._rows(batch_id))
            live = [row for row in rows if not row["dropped"]]
            problems = [problem for row in live for problem in _problems(row)]
            if not live:
                problems.append("it has no rows to execute")
            if problems:
                raise NotReady(batch_id, problems)
            made: dict[int, str] = {}  # row_no -> the id of the customer it created
            for row in live:
                row["status"], row["result"] = self._apply(batch, row, by, made)
            self._store(batch_id, rows)
            self.conn.execute(
                "UPDATE batches SET status = 'executed', executed_at = ?, executed_by = ?, summary = ? WHERE id = ?",
                (now_iso(), by, _summary(batch, rows), batch_id))
        return self.get(batch_id)

    def _apply(self, batch: dict, row: dict, by: str, made: dict[int, str]) -> tuple[str, str]:
        """(the row's final status, the customer code it made or changed)."""
        try:
            if batch["kind"] == "new_customers":
                return "created", self._create(row, by, made)
            if row["status"] == "unchanged":
                return "unchanged", row["preview"]["code"]
            customer = self.db.find_customer(row["fields"]["code"])
            assert customer is not None  # the row is not invalid: check_update found its customer in this transaction
            record = self.db.update_customer(customer["id"], update_fields(batch["action"], batch["value"]), by)
            return "updated", record["code"]
        except ValidationError as exc:
            raise NotReady(batch["id"], [f"row {row['row_no']}: {exc}"]) from None
        except IntegrityErrors as exc:
            raise NotReady(batch["id"], [f"row {row['row_no']}: refused by the database ({exc})"]) from None

    def _create(self, row: dict, by: str, made: dict[int, str]) -> str:
        fields, addresses = split_address_columns(check_new_customer(self.db, row["fields"])[0])
        fields, extra = split_extras(fields)
        record = self.db.create_customer(fields, by, extra=extra)
        write_address_columns(self.db, record["id"], addresses, by)
        made[row["row_no"]] = record["id"]
        if row["keep"]:  # a person decided these are different people: not for the duplicates review again
            for flag in row["duplicates"]:
                dismiss_duplicate(self.db, record["id"], flag.get("customer_id") or made[flag["row"]])
        return record["code"]

    def history(self, batch_id: int) -> builtins.list[dict[str, Any]]:
        """Who did what to the rows, oldest first (creation and execution are on the batch)."""
        return [dict(r) for r in self.conn.execute(
            "SELECT at, by, action, row_no, detail FROM batch_events WHERE batch_id = ? ORDER BY id", (batch_id,))]

    def _event(self, batch_id: int, action: str, row_no: int | None, detail: str = "") -> None:
        self.conn.execute("INSERT INTO batch_events (batch_id, at, by, action, row_no, detail) VALUES (?, ?, ?, ?, ?, ?)",
                          (batch_id, now_iso(), self.by, action, row_no, detail))

    # --- rows --------------------------------------------------------------------------------

    def _open(self, batch_id: int) -> dict[str, Any]:
        batch = self.get(batch_id)
        if batch["status"] != "open":
            raise BatchClosed(f"batch {batch_id} is {batch['status']}: it can no longer change")
        return batch

    def _rows(self, batch_id: int) -> builtins.list[dict[str, Any]]:
        return [_loaded(row) for row in self.conn.execute(
            "SELECT * FROM batch_rows WHERE batch_id = ? ORDER BY row_no", (batch_id,))]

    def _row(self, batch_id: int, row_no: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM batch_rows WHERE batch_id = ? AND row_no = ?",
                                (batch_id, row_no)).fetchone()
        if row is None:
            raise BatchError(f"batch {batch_id} has no row {row_no}")
        return _loaded(row)

    def _recheck(self, batch: dict) -> None:
        """Check every row again: a change to one row can flag or clear another."""
        self._store(batch["id"], self._checked(batch, self._rows(batch["id"])))

    def _store(self, batch_id: int, rows: builtins.list[dict[str, Any]]) -> None:
        self.conn.executemany(
            "UPDATE batch_rows SET status = ?, errors = ?, duplicates = ?, preview = ?, result = ? "
            "WHERE batch_id = ? AND row_no = ?",
            [(row["status"], _json(row["errors"]), _json(row["duplicates"]), _json(row["preview"]), row["result"],
              batch_id, row["row_no"]) for row in rows])

    def _checked(self, batch: dict, rows: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        checked = self._check_new(rows) if batch["kind"] == "new_customers" else self._check_updates(batch, rows)
        for row in checked:
            row["status"] = _status(row)
        return checked

    def _check_new(self, rows: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        live = [(row["row_no"], customer_fields(row["fields"])) for row in rows if not row["dropped"]]
        in_batch = in_batch_duplicates(live)
        out = []
        for row in rows:
            fields, errors = check_new_customer(self.db, row["fields"])
            errors = errors | _card_errors(row["fields"])
            duplicates = [] if row["dropped"] else (
                [{"customer_id": key, "code": code, "reason": reason}
                 for key, code, reason in similar_customers(self.conn, fields)]
                + [{"row": other, "reason": reason} for other, reason in in_batch.get(row["row_no"], [])])
            out.append(row | {"errors": errors, "duplicates": duplicates, "preview": {}})
        return out

    def _check_updates(self, batch: dict, rows: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        first_row: dict[str, int] = {}  # customer id -> the row that has it first
        out = []
        for row in rows:
            record, preview, errors = check_update(self.db, batch["action"], batch["value"], row["fields"])
            errors = errors | _card_errors(row["fields"])
            if record is not None and not row["dropped"]:
                earlier = first_row.setdefault(record["id"], row["row_no"])
                if earlier != row["row_no"]:
                    errors = errors | {"code": f"{record['code']} is already in row {earlier}"}
            out.append(row | {"errors": errors, "duplicates": [], "preview": preview})
        return out


def _kept(value: Any) -> str:
    """A cell as a row keeps it: trimmed, a payment card number masked (lanehub.domain.payment_cards).
    The row is kept (nothing else typed is lost) and stays invalid (``_card_errors``)."""
    return redact(str(value).strip())


def _card_errors(fields: dict[str, Any]) -> dict[str, str]:
    """{field: refusal} for each cell that held a payment card number (masked on the way in)."""
    return {name: refusal(masked) for name, value in fields.items() if (masked := masked_card(str(value)))}


def _status(row: dict[str, Any]) -> str:
    if row["dropped"]:
        return "dropped"
    if row["errors"]:
        return "invalid"
    if row["duplicates"]:
        return "kept" if row["keep"] else "duplicate"
    if row["preview"] and row["preview"]["current"] == row["preview"]["new"]:
        return "unchanged"
    return "ok"


def _problems(row: dict[str, Any]) -> list[str]:
    """Why a row that is not dropped blocks execution (nothing: it may go)."""
    if row["status"] == "invalid":
        return [f"row {row['row_no']} is invalid (" + "; ".join(f"{k} {v}" for k, v in sorted(row["errors"].items())) + ")"]
    if row["status"] == "duplicate":
        others = ", ".join(d.get("code") or f"row {d['row']}" for d in row["duplicates"])
        return [f"row {row['row_no']} may be a duplicate of {others}: drop it or keep it"]
    return []


def _summary(batch: dict, rows: list[dict[str, Any]]) -> str:
    count = {status: sum(1 for row in rows if row["status"] == status)
             for status in ("created", "updated", "unchanged", "dropped")}
    dropped = plural(count["dropped"], "row") + " dropped"
    if batch["kind"] == "new_customers":
        return f"created {plural(count['created'], 'customer')}; {dropped}"
    return f"updated {plural(count['updated'], 'customer')}; {count['unchanged']} unchanged; {dropped}"


def plural(number: int, word: str) -> str:
    return f"{number} {word}" + ("" if number == 1 else "s")


def _loaded(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for name in ("fields", "errors", "duplicates", "preview"):
        out[name] = json.loads(out[name])
    out["keep"], out["dropped"] = bool(out["keep"]), bool(out["dropped"])
    return out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
