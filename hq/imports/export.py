"""Export back (Rattail's datasync, one way): lanehub's changes of the fields
marked ``export`` in ``[import.customers]`` go to the external system.

The changes log is the outbox: a cursor (the last exported ``seq``) says
what was sent. Each run writes one row per customer whose exported fields
changed since, with the current values (the consumer upserts by ``code`` or
``external_id``), to a CSV drop directory (a new file each run, written to a
temporary name, fsynced and renamed, so the POS never reads half a file) or
to a SQL table. Changes made by the import itself are not echoed back.
Delivery is at least once: a CSV written just before a crash, whose cursor
was not saved, is written again next run; the SQL table holds the cursor
itself (``last_seq``), so a SQL export is exactly once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from hq.db import HQDatabase
from hq.imports.engine import ImportSpec
from hq.imports.sources import is_url
from lanehub.replication.sqlite import transaction

CURSOR = "export_seq:{kind}"


def pending_rows(db: HQDatabase, spec: ImportSpec, after: int) -> tuple[list[dict], int]:
    """(one row per customer with exported fields changed after ``after``, the last seq seen)."""
    exported = set(spec.export)
    changed: dict[str, set[str]] = {}
    last = after
    rows = db.conn.execute("SELECT seq, key, by, fields FROM changes WHERE seq > ? AND entity = 'customer' ORDER BY seq",
                           (after,))
    for seq, key, by, fields in rows:
        last = seq
        if by.startswith("import:"):
            continue
        names = exported & set(json.loads(fields))
        if names:
            changed.setdefault(key, set()).update(names)
    out = []
    for key, names in changed.items():
        record = db.replica.get("customer", key)
        assert record is not None  # the changes log only names customers the replica holds
        out.append({"code": record["code"], "external_id": record["external_id"]}
                   | {name: _text(record[name]) for name in spec.export}
                   | {"changed_fields": ",".join(sorted(names)), "last_seq": last})
    out.sort(key=lambda row: row["code"])
    return out, last


def export_changes(db: HQDatabase, spec: ImportSpec) -> str:
    if not spec.export:
        raise ValueError(f"[import.{spec.kind}] export lists no fields")
    if not spec.export_to:
        raise ValueError(f"[import.{spec.kind}] export_to is not set (a directory or a database URL)")
    if is_url(spec.export_to):
        return _export_sql(db, spec)
    return _export_csv(db, spec)


def _cursor(db: HQDatabase, spec: ImportSpec) -> int:
    return db.meta.get_int(CURSOR.format(kind=spec.kind), 0)


def _save_cursor(db: HQDatabase, spec: ImportSpec, seq: int) -> None:
    with transaction(db.conn):
        db.meta.set(CURSOR.format(kind=spec.kind), seq)


def _columns(spec: ImportSpec) -> list[str]:
    return ["code", "external_id", *spec.export, "changed_fields", "last_seq"]


def _export_csv(db: HQDatabase, spec: ImportSpec) -> str:
    rows, last = pending_rows(db, spec, _cursor(db, spec))
    if not rows:
        _save_cursor(db, spec, last)
        return f"lanehub -> {spec.source}: exported 0 customers"
    folder = Path(spec.export_to)
    try:
        path = _write_drop(folder, spec, rows, last)
    except OSError as exc:  # the drop is away or not writable: nothing moves, the next run tries again
        raise ValueError(f"export to {folder}: {exc.strerror or exc}") from None
    _save_cursor(db, spec, last)
    return f"lanehub -> {spec.source}: exported {len(rows)} customers to {path}"


def _write_drop(folder: Path, spec: ImportSpec, rows: list[dict], last: int) -> Path:
    """A new CSV file in the drop, whole or not at all (temporary name, fsync, rename)."""
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{spec.kind}-{stamp}-{last}.csv"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(spec))
    writer.writeheader()
    writer.writerows(rows)
    temporary = path.with_name("." + path.name + ".tmp")
    # Personal data (e-mails, phones): readable by lanehub's group (the POS's pickup), not by everyone.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    os.fchmod(descriptor, 0o640)  # whatever the umask
    with open(descriptor, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def _export_sql(db: HQDatabase, spec: ImportSpec) -> str:
    from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, func, select
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(spec.export_to)
    table = Table(spec.export_table, MetaData(), Column("id", Integer, primary_key=True, autoincrement=True),
                  *[Column(name, Integer if name == "last_seq" else Text) for name in _columns(spec)],
                  Column("exported_at", Text))
    try:
        with engine.begin() as conn:
            table.create(conn, checkfirst=True)
            done = conn.execute(select(func.max(table.c.last_seq))).scalar() or 0
            rows, last = pending_rows(db, spec, max(done, _cursor(db, spec)))
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if rows:
                conn.execute(table.insert(), [row | {"exported_at": stamp} for row in rows])
    except SQLAlchemyError as exc:
        raise ValueError(f"export to {spec.export_table}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    _save_cursor(db, spec, last)
    return f"lanehub -> {spec.source}: exported {len(rows)} customers to table {spec.export_table}"


def _text(value) -> str:
    if value is True or value is False:
        return "yes" if value else "no"
    return "" if value is None else str(value)
