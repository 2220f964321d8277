"""Where importers read from: CSV files and SQL databases (SQLAlchemy URLs).

A source yields ``(where, row)``: where names the line or row for error
messages, row maps column names to values (text, numbers or None from SQL;
the targets normalize them). A CSV's delimiter (',' ';' or tab, as POS
exports vary) is sniffed from its header line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lanehub.runtime.text_files import UploadEncodingError, decode_upload

SourceRow = tuple[str, dict[str, Any]]
URL_RE = re.compile(r"^[a-z][a-z0-9+]*://")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class SourceError(Exception):
    """The source cannot be read (missing file, bad URL, failing query)."""


def is_url(source: str) -> bool:
    return bool(URL_RE.match(source))


@dataclass
class CsvSource:
    path: Path
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def columns(self) -> list[str]:
        with self._open() as handle:
            return list(self._reader(handle).fieldnames or [])

    def count(self) -> int:
        with self._open() as handle:
            return max(sum(1 for _ in self._reader(handle)), 0)

    def rows(self) -> Iterator[SourceRow]:
        with self._open() as handle:
            reader = self._reader(handle)
            for row in reader:
                if None in row:  # more cells than the header has
                    yield f"{self.path.name} line {reader.line_num}", {"__extra__": row.pop(None)} | row
                else:
                    yield f"{self.path.name} line {reader.line_num}", row

    def _open(self):
        """The file's text as a stream; decoded once (lanehub.runtime.text_files: UTF-8, UTF-16,
        Windows-1252...), as columns, count and rows each read it."""
        if self._text is None:
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise SourceError(f"{self.path}: {exc.strerror}") from None
            try:
                self._text = decode_upload(data, self.path.name)
            except UploadEncodingError as exc:
                raise SourceError(str(exc)) from None
        return io.StringIO(self._text, newline="")

    @staticmethod
    def _reader(handle) -> csv.DictReader:
        header = handle.readline()
        handle.seek(0)
        return csv.DictReader(handle, delimiter=sniff_delimiter(header))


def sniff_delimiter(header: str) -> str:
    """',' ';' or tab: whichever the header line has most of (POS exports vary)."""
    return max((",", ";", "\t"), key=header.count)


@dataclass
class SqlSource:
    """Rows of a SELECT on any database SQLAlchemy reaches (sqlite:///pos.db,
    postgresql+psycopg://user@host/db, ...), streamed, never all in memory."""

    url: str
    query: str

    def _run(self, sql: str):
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = create_engine(self.url)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise SourceError(f"cannot use {_safe_url(self.url)}: {exc}") from None
        return engine, text(sql), SQLAlchemyError

    def columns(self) -> list[str]:
        engine, statement, error = self._run(f"SELECT * FROM ({self.query}) AS source LIMIT 0")
        try:
            with engine.connect() as conn:
                return list(conn.execute(statement).keys())
        except error as exc:
            raise SourceError(f"{_safe_url(self.url)}: {_first_line(exc)}") from None
        finally:
            engine.dispose()

    def count(self) -> int:
        engine, statement, error = self._run(f"SELECT count(*) FROM ({self.query}) AS source")
        try:
            with engine.connect() as conn:
                return int(conn.execute(statement).scalar() or 0)
        except error as exc:
            raise SourceError(f"{_safe_url(self.url)}: {_first_line(exc)}") from None
        finally:
            engine.dispose()

    def rows(self) -> Iterator[SourceRow]:
        engine, statement, error = self._run(self.query)
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(statement)
                for number, row in enumerate(result.mappings(), start=1):
                    yield f"row {number}", dict(row)
        except error as exc:
            raise SourceError(f"{_safe_url(self.url)}: {_first_line(exc)}") from None
        finally:
            engine.dispose()


def open_source(source: str, query: str, default_table: str):
    """A CSV path or a SQLAlchemy URL (``query`` or ``SELECT * FROM default_table``)."""
    if is_url(source):
        if not query:
            if not IDENTIFIER_RE.match(default_table):
                raise SourceError(f"not a table name: {default_table!r}")
            query = f"SELECT * FROM {default_table}"
        return SqlSource(source, query)
    path = Path(source)
    if not path.is_file():
        raise SourceError(f"{source}: no such file (a CSV path or a database URL such as sqlite:///pos.db)")
    return CsvSource(path)


def _safe_url(url: str) -> str:
    """The URL without its password (it ends up in logs and terminals)."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
