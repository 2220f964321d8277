"""The replication engine: apply changes to a SQLite replica, per-field LWW.

The same engine runs at HQ and at every edge, for every entity in
``lanehub.domain.model.ENTITIES``. Applying is idempotent and commutative: the result
depends on the set of changes applied, never on their order or on how often
each arrived (docs/protocol.md). Callers own the transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterable

from lanehub.domain.model import ENTITIES, EntitySpec
from lanehub.protocol.change import NEVER, Change, FieldClocks
from lanehub.replication.sqlite import dialect_of


@dataclass
class Applied:
    """What applying one change did to its record."""

    created: bool
    changed: dict[str, Any] = field(default_factory=dict)  # field -> new value


def _encode(spec: EntitySpec, name: str, value: Any) -> Any:
    if name in spec.bools:
        return 1 if value else 0
    return value


def _decode(spec: EntitySpec, name: str, value: Any) -> Any:
    return bool(value) if name in spec.bools else ("" if value is None else value)


def decode_row(spec: EntitySpec, row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    record = {"id": row["id"]}
    for name in spec.fields:
        record[name] = _decode(spec, name, row[name])
    return record


class Replica:
    """A site's copy of the replicated entities, in one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.sqlite = dialect_of(conn) == "sqlite"  # else PostgreSQL: HQ's storage only
        # Name search: SQLite's FTS5 tables; on PostgreSQL the name_key column.
        self.fts = self.sqlite
        self._select = {
            name: f"SELECT rid, id, {', '.join(f'[{f}]' for f in (*spec.fields, *spec.derived_columns))}, _clocks "
                  f"FROM [{spec.table}] WHERE id = ?"
            for name, spec in ENTITIES.items()
        }
        self._update_sql: dict[tuple[str, tuple[str, ...]], str] = {}  # an edit's UPDATE, by the columns it sets

    # --- reads ---------------------------------------------------------------

    def get(self, entity: str, key: str) -> dict[str, Any] | None:
        spec = ENTITIES[entity]
        row = self.conn.execute(self._select[entity], (key,)).fetchone()
        return decode_row(spec, row) if row else None

    def find_customer(self, ref: str) -> dict[str, Any] | None:
        """A customer by id, code or alias (a replaced provisional code still resolves;
        a merged duplicate resolves to its survivor)."""
        row = self.conn.execute(
            "SELECT id FROM customers WHERE id = ? OR code = ? "
            "UNION SELECT customer_id FROM code_aliases WHERE alias = ? LIMIT 1",
            (ref, ref.upper(), ref.upper()),
        ).fetchone()
        record = self.get("customer", row[0]) if row else None
        for _ in range(5):  # a merged duplicate's code resolves to the customer it was merged into
            if not record or not record.get("merged_into"):
                break
            record = self.get("customer", record["merged_into"]) or record
        return record

    def clocks(self, entity: str, key: str) -> dict[str, str]:
        spec = ENTITIES[entity]
        row = self.conn.execute(f"SELECT _clocks FROM [{spec.table}] WHERE id = ?", (key,)).fetchone()
        return FieldClocks.load(row[0] if row else None, spec.fields).stamps

    def count(self, entity: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM [{ENTITIES[entity].table}]").fetchone()[0])

    # --- writes --------------------------------------------------------------

    def apply(self, change: Change) -> Applied:
        spec = ENTITIES[change.entity]
        row = self.conn.execute(self._select[change.entity], (change.key,)).fetchone()
        stamp = change.stamp
        won = False
        changed: dict[str, Any] = {}
        if row is None:
            record = dict(spec.defaults)
            clocks = FieldClocks({name: NEVER for name in spec.fields})
            for name, value in change.fields.items():
                if name in record and clocks.wins(name, stamp):
                    clocks.stamps[name] = stamp
                    if record[name] != value:
                        record[name] = value
                        changed[name] = value
            self._insert(spec, change.key, record, clocks)
            return Applied(created=True, changed=changed)
        # An edit: only the fields it names are read from the row; the whole record only
        # when a search key or the full-text index must follow (catch-up is mostly edits).
        clocks = FieldClocks.load(row["_clocks"], spec.fields)
        for name, value in change.fields.items():
            if name not in clocks.stamps or not clocks.wins(name, stamp):
                continue
            clocks.stamps[name] = stamp
            won = True
            if _decode(spec, name, row[name]) != value:
                changed[name] = value
        if won:
            self._update(spec, row, changed, clocks)
        return Applied(created=False, changed=changed)

    def _insert(self, spec: EntitySpec, key: str, record: dict[str, Any], clocks: FieldClocks) -> None:
        derived = spec.derive(record)
        columns = ["id", *spec.fields, *spec.derived_columns, "_clocks"]
        values = [key, *(_encode(spec, n, record[n]) for n in spec.fields), *(derived[n] for n in spec.derived_columns), clocks.dump()]
        cursor = self.conn.execute(
            f"INSERT INTO [{spec.table}] ({', '.join(f'[{c}]' for c in columns)}) VALUES ({', '.join('?' * len(columns))})",
            values,
        )
        if spec.fts and self.fts:
            self._fts_insert(spec, cursor.lastrowid, record)

    def _update(self, spec: EntitySpec, row: sqlite3.Row, changed: dict[str, Any], clocks: FieldClocks) -> None:
        """Write ``changed`` and the clocks to the stored ``row`` (its fields, search keys, clocks)."""
        sets = {name: _encode(spec, name, value) for name, value in changed.items()}
        keys_move = bool(changed) and bool(spec.derived_columns) and (
            not spec.derived_from or not changed.keys().isdisjoint(spec.derived_from))
        index_moves = bool(spec.fts) and self.fts and not changed.keys().isdisjoint(spec.fts)
        before = decode_row(spec, row) if keys_move or index_moves else {}
        record = before | changed
        if keys_move:
            # Only the search keys that move: each one set is an index entry rewritten,
            # most of an edit's cost in a catch-up (docs/benchmarks.md).
            sets.update({name: value for name, value in spec.derive(record).items() if row[name] != value})
        sets["_clocks"] = clocks.dump()
        columns = tuple(sets)
        sql = self._update_sql.get((spec.table, columns))
        if sql is None:
            sql = f"UPDATE [{spec.table}] SET {', '.join(f'[{c}] = ?' for c in columns)} WHERE rid = ?"
            self._update_sql[(spec.table, columns)] = sql
        self.conn.execute(sql, [*sets.values(), row["rid"]])
        if index_moves:
            self._fts_delete(spec, row["rid"], before)
            self._fts_insert(spec, row["rid"], record)

    def _fts_insert(self, spec: EntitySpec, rid: int | None, record: dict[str, Any]) -> None:
        self.conn.execute(
            f"INSERT INTO [{spec.table}_fts] (rowid, {', '.join(spec.fts)}) VALUES (?, {', '.join('?' * len(spec.fts))})",
            [rid, *(record[n] for n in spec.fts)],
        )

    def _fts_delete(self, spec: EntitySpec, rid: int, record: dict[str, Any]) -> None:
        self.conn.execute(
            f"INSERT INTO [{spec.table}_fts] ([{spec.table}_fts], rowid, {', '.join(spec.fts)}) "
            f"VALUES ('delete', ?, {', '.join('?' * len(spec.fts))})",
            [rid, *(record[n] for n in spec.fts)],
        )

    def take_fields(self, entity: str, key: str, refused: Change, record: dict[str, Any], clocks: dict[str, str]) -> None:
        """After HQ refused ``refused``: every field whose value still comes from it
        takes HQ's value and clock (``record``/``clocks``); other fields stay."""
        spec = ENTITIES[entity]
        row = self.conn.execute(self._select[entity], (key,)).fetchone()
        if row is None:
            return
        current = decode_row(spec, row)
        mine = FieldClocks.load(row["_clocks"], spec.fields)
        changed = {}
        for name in refused.fields:
            if name in spec.fields and mine.stamps.get(name) == refused.stamp:
                mine.stamps[name] = clocks.get(name, NEVER)
                value = record.get(name, spec.defaults[name])
                if value != current[name]:
                    changed[name] = value
        self._update(spec, row, changed, mine)

    def remove(self, entity: str, key: str) -> bool:
        """Drop a record HQ never accepted. Accepted records are never deleted."""
        spec = ENTITIES[entity]
        row = self.conn.execute(self._select[entity], (key,)).fetchone()
        if row is None:
            return False
        if spec.fts and self.fts:
            self._fts_delete(spec, row["rid"], decode_row(spec, row))
        self.conn.execute(f"DELETE FROM [{spec.table}] WHERE rid = ?", (row["rid"],))
        return True

    # --- snapshots -------------------------------------------------------------

    def export_rows(self, entity: str, after: str = "", limit: int = 1000,
                    only: dict[str, str] | None = None) -> tuple[list[str], list[list[Any]]]:
        """A snapshot page as (columns, rows): ``id``, the fields as stored, the derived
        search keys, ``_clocks``. Rows rather than objects, and search keys computed
        once at HQ: a million-record snapshot is mostly this. ``only``: rows whose
        fields have these values (a store's own sales)."""
        spec = ENTITIES[entity]
        columns = self.snapshot_columns(spec)
        only = {name: value for name, value in (only or {}).items() if name in spec.fields}
        where = "".join(f" AND [{name}] = ?" for name in only)
        # Plain tuples on SQLite: a sqlite3.Row per row was half of the page's cost.
        cursor = self.conn.cursor() if self.sqlite else self.conn
        if self.sqlite:
            cursor.row_factory = None
        rows = cursor.execute(
            f"SELECT {', '.join(f'[{c}]' for c in columns)} FROM [{spec.table}] WHERE id > ?{where} ORDER BY id LIMIT ?",
            (after, *only.values(), limit),
        ).fetchall()
        return columns, [list(row) for row in rows]

    @staticmethod
    def snapshot_columns(spec: EntitySpec) -> list[str]:
        return ["id", *spec.fields, *spec.derived_columns, "_clocks"]

    def load(self, entity: str, records: Iterable[dict[str, Any]], *, empty: bool) -> int:
        """Take whole records. ``empty``: the table was empty when the load began,
        so rows are inserted in bulk; otherwise each field is merged by its clock."""
        spec = ENTITIES[entity]
        records = list(records)
        if not empty:
            for record in records:
                self.merge_record(entity, record)
            return len(records)
        columns = ["id", *spec.fields, "_clocks"]
        rows = [[record["id"], *(_encode(spec, n, record.get(n, spec.defaults[n])) for n in spec.fields),
                 record.get("_clocks") or "{}"] for record in records]
        return self.load_rows(entity, columns, rows)

    def load_rows(self, entity: str, columns: list[str], rows: list[list[Any]]) -> int:
        """Insert snapshot rows (``export_rows``'s shape) into an empty table."""
        spec = ENTITIES[entity]
        expected = self.snapshot_columns(spec)
        if columns != expected:
            # Another version's columns, or no search keys: map by name, fill in
            # defaults, and derive the search keys here.
            where = {name: i for i, name in enumerate(columns)}
            rows = [self._fill_row(spec, where, row) for row in rows]
        self.conn.executemany(
            f"INSERT INTO [{spec.table}] ({', '.join(f'[{c}]' for c in expected)}) VALUES ({', '.join('?' * len(expected))})",
            rows,
        )
        return len(rows)

    @staticmethod
    def _fill_row(spec: EntitySpec, where: dict[str, int], row: list[Any]) -> list[Any]:
        record = {"id": row[where["id"]]}
        for name in spec.fields:
            record[name] = row[where[name]] if name in where else _encode(spec, name, spec.defaults[name])
        derived = spec.derive(record) if spec.derived_columns else {}
        clocks = row[where["_clocks"]] if "_clocks" in where else "{}"
        return [record["id"], *(record[n] for n in spec.fields), *(derived[n] for n in spec.derived_columns), clocks]

    def merge_record(self, entity: str, record: dict[str, Any]) -> None:
        """Merge a whole record with its clocks: per field, the later stamp wins."""
        spec = ENTITIES[entity]
        theirs = FieldClocks.load(record.get("_clocks"), spec.fields)
        by_stamp: dict[str, dict[str, Any]] = {}
        for name in spec.fields:
            stamp = theirs.stamps[name]
            if stamp != NEVER:
                by_stamp.setdefault(stamp, {})[name] = record.get(name, spec.defaults[name])
        for stamp, fields in sorted(by_stamp.items()):
            hlc, _, origin = stamp.partition("|")
            self.apply(Change("", entity, record["id"], origin, hlc, "", fields))

    def rebuild_fts(self) -> None:
        for spec in ENTITIES.values():
            if spec.fts and self.fts:
                self.conn.execute(f"INSERT INTO [{spec.table}_fts] ([{spec.table}_fts]) VALUES ('rebuild')")
