"""`lanehub bench import`: a POS customer import into HQ, from CSV and SQL.

Four runs against one HQ database: the first import (every row a create),
the same import again (no change: the diff alone), an import where 1% of the
rows changed an owned field, and the same source read from a SQLite POS
database through SQLAlchemy. Each run is timed end to end with its peak
memory growth, as an operator would see it.
"""

from __future__ import annotations

import csv
import resource
import sqlite3
import time
from pathlib import Path

from hq.config import load_config
from hq.db import HQDatabase
from hq.imports.engine import ImportSpec, run_import
from hq.imports.sources import CsvSource, SqlSource
from hq.imports.targets import TARGETS
from lanehub.domain.codes import CodeFormat
from lanehub.runtime.config import dump_toml

COLUMNS = {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name", "MAIL": "email", "CITY": "city"}
CITIES = ("Madrid", "Toledo", "León", "Vigo")


def _rows(count: int, changed_every: int = 0):
    for i in range(count):
        city = CITIES[i % len(CITIES)]
        if changed_every and i % changed_every == 0:
            city = "Lugo"
        yield {"NUM": str(100_000 + i), "NAME": f"Name{i % 997}", "SURNAME": f"Surname{i}",
               "MAIL": f"c{i}@example.com", "CITY": city}


def _csv(path: Path, count: int, changed_every: int = 0) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(_rows(count, changed_every))
    return path


def _timed(label: str, target, spec, source) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    plan = run_import(target, spec, source, "import:pos")
    seconds = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"run": label, "rows": plan.rows, "summary": plan.summary(), "seconds": round(seconds, 3),
            "rows_per_s": round(plan.rows / seconds) if seconds else 0, "peak_rss_growth_mb": round(grown / 1024, 1)}


def bench_import(base: Path, customers: int) -> list[dict]:
    config_path = base / "hq.toml"
    config_path.write_text(dump_toml({"hq": {"db": str(base / "hq.db")}, "import": {"customers": {
        "source": "pos", "columns": COLUMNS, "owned": ["first_name", "last_name", "city"]}}}))
    db = HQDatabase(base / "hq.db", CodeFormat())
    try:
        target = TARGETS["customers"](db)
        spec = ImportSpec.from_config(load_config(config_path), "customers", target)
        first = _csv(base / "pos.csv", customers)
        results = [_timed("first import (creates)", target, spec, CsvSource(first)),
                   _timed("same file again (no change)", target, spec, CsvSource(first))]
        changed = _csv(base / "pos-changed.csv", customers, changed_every=100)
        results.append(_timed("1% of rows changed", target, spec, CsvSource(changed)))
        pos = sqlite3.connect(base / "pos.db")
        pos.execute("CREATE TABLE clients (NUM TEXT, NAME TEXT, SURNAME TEXT, MAIL TEXT, CITY TEXT)")
        pos.executemany("INSERT INTO clients VALUES (:NUM, :NAME, :SURNAME, :MAIL, :CITY)", _rows(customers, 100))
        pos.commit()
        pos.close()
        sql = SqlSource(f"sqlite:///{base / 'pos.db'}", "SELECT * FROM clients")
        results.append(_timed("SQL source, no change", target, spec, sql))
        return results
    finally:
        db.close()
