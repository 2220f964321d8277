"""A new store's snapshot from HQ's snapshot file (D49), and a long catch-up, on real
brokers, real HQ and edge processes and their SQLite files: a file cut into hundreds
of chunks ends as HQ's replica; an edge killed half-way through it starts again and
ends complete; a store off while more than two catch-up pages of changes were made
(their down batches queued for it meanwhile) ends with HQ's state, no seq missed."""

from __future__ import annotations

import base64
import json
import sqlite3
import zlib
from pathlib import Path

import pytest
from helpers import db_query, db_value, edge_db, edge_ready, hq_db, replica_state, wait_converged, wait_until

from edge.db import EdgeDatabase
from hq.db import HQDatabase
from hq.snapshot_file import SnapshotFiles
from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import ENTITIES
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.routes import EVERY_STORE, route_of
from lanehub.protocol.sync import SnapshotFileReply
from lanehub.replication.sqlite import transaction

CHUNK = 4096  # HQ's smallest chunk: a few thousand customers make hundreds of them
EVERY_STORE_ENTITIES = [name for name in ENTITIES if route_of(name) == EVERY_STORE]


def _chain(make_chain, tmp_path, customers: int, stores=("S001",)):
    workdir = tmp_path / "chain0"  # make_chain's first chain
    chain = make_chain(stores, start=False,
                       hq_settings={"hq": {"db": str(workdir / "hq.db"), "snapshot_chunk": CHUNK}})
    chain.start(demo_customers=customers)
    return chain


def _builds(chain) -> list[dict]:
    return [json.loads(p.read_text()) for p in Path(f"{hq_db(chain)}.snapshots").glob("*.json")]


def _log(chain, store: str) -> str:
    return chain.edges[store].log_path.read_text(errors="replace")


def test_a_snapshot_file_of_hundreds_of_chunks_gives_the_store_hq_s_replica(make_chain, tmp_path):
    chain = _chain(make_chain, tmp_path, 2000)
    wait_until(lambda: edge_ready(chain, "S001"), 60, message="S001's snapshot")
    hq_state = wait_converged(chain)
    assert replica_state(edge_db(chain, "S001")) == hq_state
    [build] = _builds(chain)
    assert len(build["chunks"]) > 100 and build["size"] > 100 * CHUNK
    assert sorted(build["entities"]) == sorted(EVERY_STORE_ENTITIES)
    # Every every-store entity came from the file; only the store's own sales as pages.
    assert f"({len(EVERY_STORE_ENTITIES)} entities), 0 rows as pages" in _log(chain, "S001")
    assert not Path(f"{edge_db(chain, 'S001')}.snapshot").exists()  # the fetched file is gone once loaded
    # The search index was built from the loaded rows.
    query = "SELECT count(*) FROM customers_fts WHERE customers_fts MATCH 'gar*'"
    assert db_value(edge_db(chain, "S001"), query) == db_value(hq_db(chain), query) > 0


def test_an_edge_killed_while_fetching_the_file_starts_again_and_ends_complete(make_chain, tmp_path):
    chain = _chain(make_chain, tmp_path, 8000)
    part = Path(f"{edge_db(chain, 'S001')}.snapshot")
    wait_until(lambda: part.exists() and part.stat().st_size > 0, 60, 0.005, "S001 fetching the snapshot file")
    chain.edges["S001"].kill()
    assert not edge_ready(chain, "S001")  # killed half-way: the snapshot never counted
    chain.edges["S001"].start()
    wait_until(lambda: edge_ready(chain, "S001"), 60, message="S001's snapshot after its restart")
    hq_state = wait_converged(chain)
    assert replica_state(edge_db(chain, "S001")) == hq_state
    assert db_value(edge_db(chain, "S001"), "SELECT count(*) FROM customers") == 8000
    assert not part.exists()


def test_a_store_back_after_many_pages_of_changes_catches_up_without_a_gap(make_chain, tmp_path):
    chain = _chain(make_chain, tmp_path, 500)
    wait_until(lambda: edge_ready(chain, "S001"), 60, message="S001's snapshot")
    wait_converged(chain)
    chain.edges["S001"].stop()
    hq = HQDatabase(hq_db(chain), CodeFormat())
    keys = [row[0] for row in hq.conn.execute("SELECT id FROM customers")]
    before = hq.head()
    for start in range(0, 12_000, 1000):  # HQ publishes them as down batches the broker queues for S001
        with transaction(hq.conn):
            for i in range(start, start + 1000):
                hq.write("customer", keys[i % len(keys)], {"city": f"C{i}", "phone": f"+34 600 {i:06d}"}, "test")
    head = hq.head()
    hq.close()
    assert head - before == 12_000  # more than two catch-up pages (5,000 each)
    chain.edges["S001"].start()
    hq_state = wait_converged(chain, 60)
    assert replica_state(edge_db(chain, "S001")) == hq_state
    # Each record holds its last edit, and the search keys moved with it.
    last = {keys[i % len(keys)]: i for i in range(12_000)}
    rows = {r["id"]: (r["city"], r["phone_key"]) for r in db_query(edge_db(chain, "S001"),
                                                                   "SELECT id, city, phone_key FROM customers")}
    assert all(rows[key] == (f"C{i}", f"34600{i:06d}") for key, i in last.items())


def test_an_entity_the_file_lacks_or_holds_with_other_columns_is_left_to_pages(tmp_path):
    hq = HQDatabase(tmp_path / "hq.db", CodeFormat())
    hq.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t")
    files = SnapshotFiles(tmp_path / "hq.db", CHUNK)
    build = files.build()
    assert build.head == hq.head()
    path = tmp_path / "edge.db.snapshot"
    with open(path, "wb") as out:
        for n in range(len(build.chunks)):
            reply = SnapshotFileReply(file=build.id, head=build.head, hlc=build.hlc, chunk=n, chunks=len(build.chunks),
                                      size=build.size, sha256=build.sha256, entities=build.entities,
                                      data=base64.b64encode(files.chunk(build, n)).decode())
            out.write(reply.decoded())
    scratch = sqlite3.connect(path)
    scratch.execute("DROP TABLE cards")
    scratch.execute("ALTER TABLE code_aliases DROP COLUMN _clocks")  # as an older HQ's table would lack a column
    scratch.commit()
    scratch.close()
    edge = EdgeDatabase(tmp_path / "edge.db", "S001")
    edge.begin_snapshot()
    loaded = edge.load_snapshot_file(path, build.entities, build.hlc)
    assert "customer" in loaded and "card" not in loaded and "code_alias" not in loaded
    assert edge.replica.count("customer") == 1
    assert edge.clock.last >= build.hlc  # a lane edit right after the snapshot sorts after it
    edge.close()
    hq.close()


def test_a_chunk_that_is_not_base64_zlib_or_inflates_too_far_is_refused():
    def reply(data: str) -> SnapshotFileReply:
        return SnapshotFileReply(file="f", head=1, hlc="", chunk=0, chunks=1, size=0, sha256="", entities=[], data=data)

    with pytest.raises(PayloadError, match="not base64 zlib"):
        reply("not base64!").decoded()
    with pytest.raises(PayloadError, match="inflates past"):
        reply(base64.b64encode(zlib.compress(b"\0" * 100_000)).decode()).decoded(limit=1000)
    assert reply(base64.b64encode(zlib.compress(b"abc")).decode()).decoded() == b"abc"
