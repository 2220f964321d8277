"""Addresses as columns of a customer row: ``address.billing.street``,
``address.delivery.city``... in imports and new-customers batches.

An external system (an ERP, a spreadsheet) keeps a customer's billing and
delivery address on the customer's own row. Each kind's columns stand for the
customer's **preferred address of that kind** (lanehub.domain.addresses): an
import or batch row with billing columns updates that address in place, or
adds it as the preferred billing address when the customer has none. Empty
cells change nothing (an import never blanks an address it did not bring).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from lanehub.domain.address_edits import add_address
from lanehub.domain.addresses import ADDRESS, ADDRESS_KINDS, ADDRESS_LINES
from lanehub.domain.codes import CodeFormat
from lanehub.domain.entity import ValidationError

if TYPE_CHECKING:
    from lanehub.replication.site import SiteDatabase

ADDRESS_PREFIX = "address."
ADDRESS_COLUMNS = tuple(f"{ADDRESS_PREFIX}{kind}.{line}" for kind in ADDRESS_KINDS for line in ADDRESS_LINES)


def column(kind: str, line: str) -> str:
    return f"{ADDRESS_PREFIX}{kind}.{line}"


def split_address_columns(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the other fields, the address columns) of a row."""
    rest = {name: value for name, value in fields.items() if not name.startswith(ADDRESS_PREFIX)}
    return rest, {name: value for name, value in fields.items() if name.startswith(ADDRESS_PREFIX)}


def _by_kind(fields: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{kind: {line: text}} of the address columns, empty cells left out."""
    by_kind: dict[str, dict[str, str]] = {}
    for name, value in fields.items():
        _, kind, line = name.split(".", 2)
        text = "" if value is None else str(value).strip()
        if text:
            by_kind.setdefault(kind, {})[line] = text
    return by_kind


def checked_address_columns(fields: dict[str, Any]) -> dict[str, str]:
    """The address columns of ``fields`` normalized (``{column: text}``), or a
    ValidationError naming each bad column."""
    unknown = sorted(n for n in fields if n.startswith(ADDRESS_PREFIX) and n not in ADDRESS_COLUMNS)
    errors = {name: f"is not an address column ({', '.join(ADDRESS_COLUMNS[:4])}... )" for name in unknown}
    out: dict[str, str] = {}
    for kind, lines in _by_kind({n: v for n, v in fields.items() if n in ADDRESS_COLUMNS}).items():
        values = ADDRESS.normalize(dict(lines))
        for line, message in ADDRESS.check_fields(values, CodeFormat()).items():
            errors[column(kind, line)] = message
        out |= {column(kind, line): value for line, value in values.items()}
    if errors:
        raise ValidationError(errors)
    return out


def _preferred(conn: sqlite3.Connection, customer_id: str, kind: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM addresses WHERE customer_id = ? AND kind = ? AND active = 1 "
                        "ORDER BY preferred DESC, rid LIMIT 1", (customer_id, kind)).fetchone()


def current_address_columns(conn: sqlite3.Connection, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """{customer_id: {column: text}} of every customer's preferred address of each
    kind among ``names`` (for an import's diff)."""
    kinds = sorted({name.split(".")[1] for name in names if name in ADDRESS_COLUMNS})
    out: dict[str, dict[str, str]] = {}
    if not kinds:
        return out
    rows = conn.execute(f"SELECT * FROM addresses WHERE active = 1 AND kind IN ({', '.join('?' * len(kinds))}) "
                        "ORDER BY preferred, rid DESC", kinds)
    for row in rows:  # the preferred (then the oldest) comes last and wins
        values = out.setdefault(row["customer_id"], {})
        for line in ADDRESS_LINES:
            values[column(row["kind"], line)] = row[line] or ""
    return out


def write_address_columns(db: SiteDatabase, customer_id: str, fields: dict[str, Any], by: str) -> None:
    """Write the address columns of ``fields`` (normalized) for the customer:
    each kind's preferred address updated, or added as preferred."""
    for kind, lines in _by_kind(split_address_columns(fields)[1]).items():
        current = _preferred(db.conn, customer_id, kind)
        if current is None:
            add_address(db, customer_id, dict(lines) | {"kind": kind, "preferred": True}, by)
            continue
        changed = {line: value for line, value in lines.items() if (current[line] or "") != value}
        if changed:
            db.write("address", current["id"], changed, by)
