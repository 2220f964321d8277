"""Snapshot files (D49): what a new store loads, built by HQ once for every store.

A build is one read transaction of HQ's database copied, in C, into a SQLite file of
its own: every entity that goes to every store, with the columns of a snapshot page
(``Replica.export_rows``), rows in id order, and HQ's head and latest stamp read in
the same transaction (so the file is exactly the state at ``head``). The file is cut
into chunks compressed once here; a store asks for them one by one (``snapshot_file``)
and inserts the tables with one ``INSERT ... SELECT`` each. HQ's cost per new store is
reading chunks, and the store's is C, not a Python object per row.

Builds live in ``<hq db>.snapshots/``: ``<id>.chunks`` (the compressed chunks, one after
the other) and ``<id>.json`` (the manifest, written last: a build without one is not
finished and is never served). The newest two are kept, so a store fetching the
previous one when a refresh lands can finish it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from lanehub.domain.model import ENTITIES
from lanehub.protocol.routes import EVERY_STORE, route_of
from lanehub.replication.replica import Replica

KEPT = 2  # builds kept: the newest, and the one a store may still be fetching


@dataclass(frozen=True)
class Build:
    """A finished snapshot file, as its manifest says."""

    id: str
    head: int
    hlc: str
    size: int
    sha256: str
    entities: list[str]
    built_at: float
    chunks: list[tuple[int, int]]  # (offset, length) in the .chunks file, per chunk


class SnapshotFiles:
    def __init__(self, db_path: str | Path, chunk_size: int = 4 * 1024 * 1024):
        self.db_path = Path(db_path)
        self.directory = Path(f"{db_path}.snapshots")
        self.chunk_size = chunk_size

    def newest(self) -> Build | None:
        builds = self._builds()
        return builds[0] if builds else None

    def get(self, build_id: str) -> Build | None:
        """A finished build by id (ids are HQ's own: anything else is simply not found)."""
        return next((b for b in self._builds() if b.id == build_id), None)

    def _builds(self) -> list[Build]:
        if not self.directory.is_dir():
            return []
        builds = []
        for manifest in self.directory.glob("*.json"):
            try:
                data = json.loads(manifest.read_text())
                builds.append(Build(**{**data, "chunks": [tuple(c) for c in data["chunks"]]}))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # half-deleted by a prune in another process: not a build
        return sorted(builds, key=lambda b: b.built_at, reverse=True)

    def build(self) -> Build:
        """Build a new snapshot file from HQ's database as it is now; prune old ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        build_id = uuid.uuid4().hex
        work = self.directory / f"{build_id}.db.partial"
        entities = [name for name in ENTITIES if route_of(name) == EVERY_STORE]
        conn = sqlite3.connect(str(work), isolation_level=None, uri=True)
        try:
            # A scratch file: rebuilt from HQ's database if anything goes wrong, so no journal.
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("ATTACH ? AS hq", (f"file:{self.db_path}?mode=ro",))
            conn.execute("BEGIN")  # one read of HQ's database: the rows, the head and the stamp agree
            head, hlc = conn.execute("SELECT coalesce(max(seq), 0), coalesce(max(hlc), '') FROM hq.changes").fetchone()
            for name in entities:
                spec = ENTITIES[name]
                columns = ", ".join(f"[{c}]" for c in Replica.snapshot_columns(spec))
                conn.execute(f"CREATE TABLE main.[{spec.table}] ({columns})")
                conn.execute(f"INSERT INTO main.[{spec.table}] SELECT {columns} FROM hq.[{spec.table}] ORDER BY id")
            conn.execute("COMMIT")
            conn.execute("DETACH hq")
        finally:
            conn.close()
        chunks, digest, size = [], hashlib.sha256(), 0
        with open(work, "rb") as raw, open(self.directory / f"{build_id}.chunks", "wb") as out:
            while piece := raw.read(self.chunk_size):
                digest.update(piece)
                packed = zlib.compress(piece, 1)  # level 1: most of the gain at a fraction of the time
                chunks.append((out.tell(), len(packed)))
                out.write(packed)
                size += len(piece)
            out.flush()
            os.fsync(out.fileno())
        work.unlink()
        build = Build(build_id, head, hlc, size, digest.hexdigest(), entities, time.time(), chunks)
        manifest = self.directory / f"{build_id}.json"
        partial = manifest.with_suffix(".json.partial")
        partial.write_text(json.dumps(build.__dict__))
        partial.rename(manifest)  # the build exists from here on
        self.prune()
        return build

    def chunk(self, build: Build, n: int) -> bytes:
        """Chunk ``n`` of a build, compressed."""
        offset, length = build.chunks[n]
        with open(self.directory / f"{build.id}.chunks", "rb") as f:
            f.seek(offset)
            return f.read(length)

    def prune(self) -> None:
        keep = {b.id for b in self._builds()[:KEPT]}
        for path in self.directory.iterdir():
            if path.name.split(".", 1)[0] not in keep and not path.name.endswith(".partial"):
                path.unlink(missing_ok=True)
        for path in self.directory.glob("*.partial"):  # a build that died half-way (not ours: ours is renamed)
            if time.time() - path.stat().st_mtime > 3600:
                path.unlink(missing_ok=True)
