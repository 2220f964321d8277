"""Customer search at the lane: by name, code, phone, e-mail, postcode or card.

Exact identifiers (code, alias, card) rank first, then e-mail and phone,
then postcode, then names. Names use SQLite FTS5 with 2- and 3-character
prefix indexes; ranking runs in Python over at most ``NAME_CANDIDATES``
rows, never ``ORDER BY rank`` over a short prefix's huge match set
(docs/benchmarks.md). Raw cursors: this is the hot path.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from lanehub.domain.model import ENTITIES, digits, normalize_text, postcode_key
from lanehub.replication.replica import decode_row
from lanehub.replication.sqlite import dialect_of

NAME_CANDIDATES = 200
# What a lane sees of a customer: everything but internal notes and bookkeeping.
LANE_FIELDS = ("id", "code", "first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city",
               "postcode", "country", "rate", "payment_status", "status", "active", "origin_store", "no_paper")

_TOKEN_RE = re.compile(r"\w+", re.UNICODE)
_SPEC = ENTITIES["customer"]
_COLUMNS = ", ".join(["id", *(f"[{f}]" for f in _SPEC.fields)])


def lane_view(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in LANE_FIELDS}


def _rows(conn: sqlite3.Connection, where: str, args: tuple) -> list[dict[str, Any]]:
    sql = f"SELECT {_COLUMNS} FROM customers WHERE active = 1 AND ({where})"
    return [decode_row(_SPEC, row) for row in conn.execute(sql, args)]


def _prefix_range(value: str) -> tuple[str, str]:
    return value, value + "\uffff"


def fts_query(text: str) -> str | None:
    tokens = _TOKEN_RE.findall(normalize_text(text))
    if not tokens:
        return None
    return " ".join(f'"{token}"*' for token in tokens)


def _name_candidates(conn: sqlite3.Connection, q: str, match: str) -> list[int]:
    """Customers whose names have a word starting with each word of ``q``: FTS5 at the
    lane; on PostgreSQL (HQ's pages only) a scan of ``name_key``, the same words."""
    if dialect_of(conn) == "sqlite":
        return [row[0] for row in conn.execute(
            "SELECT rowid FROM customers_fts WHERE customers_fts MATCH ? LIMIT ?", (match, NAME_CANDIDATES))]
    where, args = [], []
    for token in _TOKEN_RE.findall(normalize_text(q)):
        pattern = token.replace("\\", "\\\\").replace("_", "\\_")
        where.append("(name_key LIKE ? OR name_key LIKE ?)")
        args += [f"{pattern}%", f"% {pattern}%"]
    return [row[0] for row in conn.execute(
        f"SELECT rid FROM customers WHERE {' AND '.join(where)} LIMIT ?", (*args, NAME_CANDIDATES))]


def search_customers(conn: sqlite3.Connection, q: str, limit: int = 20) -> list[dict[str, Any]]:
    q = q.replace("\x00", "").strip()  # nothing stored holds a NUL (lanehub.domain.entity.text_checks)
    if not q:
        return []
    scored: dict[str, tuple[int, dict]] = {}

    def add(rows: list[dict], score: int) -> None:
        for row in rows:
            if row["id"] not in scored or scored[row["id"]][0] < score:
                scored[row["id"]] = (score, row)

    upper = q.upper()
    add(_rows(conn, "code = ?", (upper,)), 1000)
    add(_rows(conn, "id IN (SELECT customer_id FROM code_aliases WHERE alias = ?)", (upper,)), 990)
    add(_rows(conn, "id IN (SELECT customer_id FROM cards WHERE number = ? AND active = 1)", (upper,)), 980)
    if "@" in q:
        email = q.casefold()
        add(_rows(conn, "email_key = ?", (email,)), 900)
        add(_rows(conn, "email_key >= ? AND email_key < ?", _prefix_range(email)), 850)
    number = digits(q)
    if len(number) >= 4 and len(number) >= len(re.sub(r"[\s()+./-]", "", q)) - 1:
        add(_rows(conn, "phone_key = ? OR mobile_key = ?", (number, number)), 800)
        add(_rows(conn, "(phone_key >= ? AND phone_key < ?) OR (mobile_key >= ? AND mobile_key < ?)",
                  _prefix_range(number) + _prefix_range(number)), 750)
    if len(q) <= 16:
        add(_rows(conn, "postcode_key = ?", (postcode_key(q),)), 700)
    match = fts_query(q)
    if match and "@" not in q:
        rids = _name_candidates(conn, q, match)
        if rids:
            marks = ",".join("?" * len(rids))
            wanted = normalize_text(q)
            for row in _rows(conn, f"rid IN ({marks})", tuple(rids)):
                name = normalize_text(f"{row['first_name']} {row['last_name']}")
                last_first = normalize_text(f"{row['last_name']} {row['first_name']}")
                if wanted in (name, last_first):
                    score = 600
                elif name.startswith(wanted):  # as cashiers type: first name first
                    score = 560
                elif last_first.startswith(wanted):
                    score = 550
                else:
                    score = 500
                add([row], score)
    ranked = sorted(scored.values(), key=lambda item: (-item[0], item[1]["last_name"], item[1]["first_name"], item[1]["code"]))
    return [lane_view(row) for _, row in ranked[:limit]]
