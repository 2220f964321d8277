"""A store's first snapshot, on the sync worker (docs/protocol.md §9, D49).

From HQ's snapshot file when HQ has them: its chunks are fetched one ahead of the
one being written (two in memory at most, whatever the chain's size) into a file
beside the store's database, checked against the file's digest, and inserted in C
(``EdgeDatabase.load_snapshot_file``). What the file does not hold (a store's own
sales, or an entity whose columns this edge's version reads differently) comes as
snapshot pages, fetched one ahead likewise. An HQ from before snapshot files refuses
the op: then everything comes as pages, as before.

Nothing of a snapshot counts until ``finish_snapshot`` commits: one interrupted at
any point (a lost link, the edge killed) starts again from empty tables.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from edge.db import EdgeDatabase
from edge.hq_errors import HQRefused
from lanehub.domain.model import ENTITIES
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.sync import ReplyData, SnapshotFileReply, SnapshotReply, SyncRequest

log = logging.getLogger(__name__)

SNAPSHOT_PAGE = 5000
# The first store to ask may wait for HQ's first build of the file (seconds for a
# million customers, more on a busy HQ); every later chunk is read from disk.
FILE_TIMEOUT = 600.0
CHUNK_TIMEOUT = 30.0
GONE_RETRIES = 3  # HQ replaced the file while it was being fetched: start on the new one

Request = Callable[[SyncRequest, type, float], ReplyData]


def take_snapshot(db: EdgeDatabase, request: Request, store: str) -> int:
    """Load every entity into empty tables and mark the replica ready; returns the
    snapshot's head (the caller catches up from the next seq)."""
    started = time.monotonic()
    db.begin_snapshot()
    with db.bulk_load():
        head, loaded = _from_file(db, request, store)
        filed = time.monotonic()
        page_head, rows = _from_pages(db, request, [e for e in ENTITIES if e not in loaded])
    paged = time.monotonic()
    if head is None:
        head = page_head or 0
    db.finish_snapshot(head)
    log.info("edge %s: snapshot at seq %d in %.1fs: file %.1fs (%d entities), %d rows as pages %.1fs, "
             "indexes %.1fs", store, head, time.monotonic() - started, filed - started, len(loaded), rows,
             paged - filed, time.monotonic() - paged)
    return head


def _from_file(db: EdgeDatabase, request: Request, store: str) -> tuple[int | None, set[str]]:
    """(the file's head, the entities it loaded), or (None, nothing) from an HQ without files."""
    path = Path(f"{db.path}.snapshot")
    try:
        for _ in range(GONE_RETRIES):
            try:
                first = _fetch_file(request, path)
            except HQRefused as exc:
                if "is gone" in str(exc):
                    log.info("edge %s: %s", store, exc)
                    continue
                log.info("edge %s: no snapshot file from HQ (%s): pages instead", store, exc)
                return None, set()
            loaded = db.load_snapshot_file(path, first.entities, first.hlc)
            return first.head, set(loaded)
        raise HQRefused("HQ replaced its snapshot file faster than this store could fetch it")
    finally:
        path.unlink(missing_ok=True)


def _fetch_file(request: Request, path: Path) -> SnapshotFileReply:
    """Every chunk of HQ's newest snapshot file into ``path``; its first reply."""
    def chunk(file: str, n: int) -> SnapshotFileReply:
        reply = request(SyncRequest(op="snapshot_file", file=file, chunk=n), SnapshotFileReply,
                        FILE_TIMEOUT if not file else CHUNK_TIMEOUT)
        assert isinstance(reply, SnapshotFileReply)
        if (file and reply.file != file) or reply.chunk != n:
            raise PayloadError(f"snapshot_file reply: chunk {reply.chunk} of {reply.file}, asked for {n} of {file or 'the newest'}")
        return reply

    first = chunk("", 0)
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as out, ThreadPoolExecutor(1, thread_name_prefix="snapshot-fetch") as fetcher:
        reply = first
        while True:
            following = fetcher.submit(chunk, first.file, reply.chunk + 1) if reply.chunk + 1 < first.chunks else None
            piece = reply.decoded()
            digest.update(piece)
            out.write(piece)
            size += len(piece)
            if following is None:
                break
            reply = following.result()
    if size != first.size or digest.hexdigest() != first.sha256:
        raise PayloadError(f"snapshot file {first.file}: {size:,} bytes received, digest "
                           f"{'matches' if digest.hexdigest() == first.sha256 else 'differs'}; expected {first.size:,}")
    return first


def _from_pages(db: EdgeDatabase, request: Request, entities: list[str]) -> tuple[int | None, int]:
    """``entities`` page by page; the next page is asked for while this one is written,
    so HQ's read and the edge's write overlap. (the first page's head, rows loaded)."""
    head = None
    total = 0

    def page(entity: str, after: str) -> SnapshotReply:
        reply = request(SyncRequest(op="snapshot", entity=entity, after=after, limit=SNAPSHOT_PAGE), SnapshotReply,
                        CHUNK_TIMEOUT)
        assert isinstance(reply, SnapshotReply)
        return reply

    with ThreadPoolExecutor(1, thread_name_prefix="snapshot-fetch") as fetcher:
        for entity in entities:
            pending: Future[SnapshotReply] | None = fetcher.submit(page, entity, "")
            while pending is not None:
                reply = pending.result()
                pending = fetcher.submit(page, entity, reply.next) if reply.next else None
                if head is None:
                    head = reply.head
                db.load_snapshot_page(entity, reply.columns, reply.rows)
                total += len(reply.rows)
    return head, total
