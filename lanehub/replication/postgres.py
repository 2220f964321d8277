"""PostgreSQL connections that speak the SQLite dialect lanehub's SQL is written in.

HQ's storage runs on SQLite or PostgreSQL (docs/decisions.md D50). The domain
operations, the replica and HQ's writers are written once, in the subset of SQL
both understand, against the sqlite3 connection API (``execute`` returning a
cursor, rows by name and by index, ``in_transaction``, ``after_commit``). This
connection keeps that API over psycopg and rewrites the few spellings that
differ: ``?`` placeholders, ``[name]`` quoting, ``INSERT OR IGNORE``, ``LIKE``
(case-insensitive in SQLite), ``CAST(... AS REAL)``.

Writers are serialized as on SQLite: ``BEGIN IMMEDIATE`` takes a transaction-level
advisory lock that every HQ writer on the database shares, so the change log's
``seq`` is assigned in commit order and stays gap-free across processes. A write
outside a transaction gets one of its own, as SQLite's autocommit would.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, Loader

# Every lanehub writer on one PostgreSQL database holds this transaction-level advisory
# lock ("lanehub" in ASCII): the SQLite writer lock, across processes and machines.
WRITER_LOCK = 0x6C616E65687562

IntegrityError = psycopg.IntegrityError


class Row:
    """A row by index and by name, like ``sqlite3.Row`` (``dict(row)`` works too)."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]):
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return tuple(self._values) == (tuple(other) if isinstance(other, (Row, tuple)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


_INDEXES: dict[tuple[bytes, ...], dict[str, int]] = {}


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], Row]:
    # Column names straight from the result: building cursor.description for every
    # statement cost as much as the statement's round trip (docs/benchmarks.md).
    result = cursor.pgresult
    names = tuple(result.fname(i) or b"" for i in range(result.nfields)) if result is not None else ()
    index = _INDEXES.get(names)
    if index is None:
        index = _INDEXES.setdefault(names, {name.decode(): i for i, name in enumerate(names)})
    return lambda values: Row(values, index)


class _BoolAsInt(Dumper):
    """Booleans are stored as 0/1 INTEGER columns, as in SQLite."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _NumericAsNumber(Loader):
    """``sum()`` of integers is numeric in PostgreSQL: give int or float, as SQLite does."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        value = Decimal(text)
        return int(value) if value == value.to_integral_value() and "." not in text else float(value)


# --- the dialect ----------------------------------------------------------------------

# Outside string literals and quoted names: a placeholder, a % (psycopg's own
# placeholder sign), a [bracketed name], or one of the words rewritten below.
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\[([^\]]+)\]|(\?)|(%)|\b(LIKE|GLOB)\b|(\bAS\s+REAL\b)""",
                    re.IGNORECASE)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def _rewrite(match: re.Match[str]) -> str:
    name, mark, percent, word, real = match.groups()
    if match.group(0).startswith("'"):
        return match.group(0).replace("%", "%%")  # psycopg reads % inside literals too
    if name is not None:
        return '"' + name.replace('"', '""') + '"'
    if mark:
        return "%s"
    if percent:
        return "%%"
    if word:
        return "ILIKE" if word.upper() == "LIKE" else word
    if real:
        return "AS DOUBLE PRECISION"
    return match.group(0)  # a string literal or a quoted name, as it is


_MIN_MAX = re.compile(r"\b(max|min)\(", re.IGNORECASE)


def _scalar_min_max(text: str) -> str:
    """SQLite's two-argument max(a, b) / min(a, b) are GREATEST / LEAST in PostgreSQL."""
    out, at = [], 0
    for match in _MIN_MAX.finditer(text):
        depth, i, commas = 1, match.end(), 0
        while i < len(text) and depth:
            ch = text[i]
            depth += {"(": 1, ")": -1}.get(ch, 0)
            commas += ch == "," and depth == 1
            i += 1
        if commas:
            out += [text[at:match.start()], "GREATEST(" if match.group(1).lower() == "max" else "LEAST("]
            at = match.end()
    return "".join(out) + text[at:]


@functools.lru_cache(maxsize=2048)
def translate(sql: str, parameters: bool = True) -> str:
    """The PostgreSQL spelling of one statement of lanehub's SQLite SQL. Without
    ``parameters`` psycopg sends the text as it is, so % stays single."""
    text = _scalar_min_max(_TOKEN.sub(_rewrite, sql))
    if not parameters:
        text = text.replace("%%", "%")
    if _OR_IGNORE.match(text):
        text = _OR_IGNORE.sub("INSERT INTO", text, count=1)
        returning = _RETURNING.search(text)
        if returning:
            text = text[:returning.start()] + "ON CONFLICT DO NOTHING " + text[returning.start():]
        else:
            text = text.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return text


def _without_nul(params: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL's text cannot hold NUL, SQLite's can: a NUL that reaches a statement
    (a search, a login name; stored fields refuse it, lanehub.domain.entity) becomes
    U+FFFD and matches nothing, instead of failing the statement."""
    if not any(isinstance(p, str) and "\x00" in p for p in params):
        return params
    return [p.replace("\x00", "\ufffd") if isinstance(p, str) else p for p in params]


class Cursor:
    """What a statement gives back: its rows and how many rows it changed."""

    def __init__(self, cursor: psycopg.Cursor[Any]):
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = None  # PostgreSQL has none: lanehub's INSERTs say RETURNING

    @property
    def description(self) -> Any:
        return self._cursor.description

    def _rows(self) -> bool:
        result = self._cursor.pgresult
        return result is not None and result.status == pq.ExecStatus.TUPLES_OK

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if self._rows() else None

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall() if self._rows() else []

    def fetchmany(self, size: int = 1) -> list[Row]:
        return self._cursor.fetchmany(size) if self._rows() else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PostgresConnection:
    """A PostgreSQL database behind the part of the sqlite3 API lanehub uses."""

    dialect = "postgresql"

    def __init__(self, conninfo: str):
        self.target = conninfo
        self._pg: psycopg.Connection[Any] = psycopg.connect(conninfo, autocommit=True, row_factory=_row_factory)
        self._pg.adapters.register_dumper(bool, _BoolAsInt)
        self._pg.adapters.register_loader("numeric", _NumericAsNumber)
        self.after_commit: list[Callable[[], None]] = []
        self.row_factory = None  # rows are always by index and by name
        self.transactions = 0  # BEGINs so far: "once per transaction" work compares it

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection, for what has no SQLite spelling (COPY, LISTEN)."""
        return self._pg

    @property
    def in_transaction(self) -> bool:
        return self._pg.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        word = sql.lstrip()[:16].upper()
        if word.startswith("BEGIN"):
            return self._begin(immediate="IMMEDIATE" in word or "EXCLUSIVE" in word)
        if word.startswith("COMMIT") or word.startswith("END"):
            return Cursor(self._pg.execute("COMMIT"))  # after_commit: lanehub.replication.sqlite.transaction
        if word.startswith("PRAGMA"):
            raise psycopg.NotSupportedError(f"not on PostgreSQL: {sql.strip()}")
        if not self.in_transaction and _WRITE.match(sql):
            return self._alone(lambda: self._run(sql, params))
        return self._run(sql, params)

    def _alone(self, write: Callable[[], Cursor]) -> Cursor:
        """SQLite's autocommit write: a transaction of its own, holding the writer lock."""
        self._begin(immediate=True)
        try:
            cursor = write()
        except BaseException:
            self._pg.execute("ROLLBACK")
            raise
        self._pg.execute("COMMIT")
        return cursor

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Cursor:
        if params and not isinstance(params, dict):
            params = _without_nul(params)
        if params:
            return Cursor(self._pg.execute(translate(sql), params))
        return Cursor(self._pg.execute(translate(sql, parameters=False)))

    def _begin(self, *, immediate: bool) -> Cursor:
        cursor = Cursor(self._pg.execute("BEGIN"))
        self.transactions += 1
        if immediate:
            self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        else:
            # A reading transaction sees one snapshot throughout, as SQLite's does.
            self._pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        if not self.in_transaction:
            return self._alone(lambda: self._executemany(sql, rows))
        return self._executemany(sql, rows)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        with self._pg.cursor() as cursor:
            cursor.executemany(translate(sql), [_without_nul(row) for row in rows])
            return Cursor(cursor)

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self._pg.execute("ROLLBACK")

    def close(self) -> None:
        self._pg.close()

    def __enter__(self) -> "PostgresConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

