"""Redelivered and reordered changes change nothing: the merge is idempotent and
commutative (hypothesis over random interleavings of the same change set, on real SQLite)."""

from __future__ import annotations

import itertools
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.db import EdgeDatabase
from hq.db import HQDatabase
from lanehub.domain.codes import CodeFormat
from lanehub.protocol.change import Change
from lanehub.protocol.hlc import format_stamp
from lanehub.replication.replica import Replica
from lanehub.replication.schema import migrate, replica_migrations
from lanehub.replication.sqlite import connect, transaction

KEYS = [str(uuid.UUID(int=i + 1)) for i in range(3)]
FIELDS = ["first_name", "last_name", "email", "city", "active"]
ORIGINS = ["hq", "S001", "S002"]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def change_sets(draw):
    count = draw(st.integers(1, 12))
    changes = []
    for i in range(count):
        fields = {}
        for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
            fields[name] = draw(st.booleans()) if name == "active" else draw(st.sampled_from(["a", "b", "c", ""]))
        origin = draw(st.sampled_from(ORIGINS))
        ms = 1_700_000_000_000 + draw(st.integers(0, 3))  # few distinct times: cross-origin ties are common
        # A site's clock never issues the same stamp twice: count per (origin, ms).
        counter = sum(1 for c in changes if c.origin == origin and c.hlc.startswith(f"{ms:013d}"))
        changes.append(Change(
            id=str(uuid.UUID(int=1000 + i)), entity="customer", key=draw(st.sampled_from(KEYS)),
            origin=origin, hlc=format_stamp(ms, counter), by="test", fields=fields))
    return changes


def state(conn):
    return conn.execute("SELECT id, first_name, last_name, email, city, active, _clocks FROM customers ORDER BY id").fetchall()


def fresh_replica(path):
    conn = connect(path)
    migrate(conn, replica_migrations)
    return conn


@SETTINGS
@given(changes=change_sets(), data=st.data())
def test_any_order_with_redelivery_gives_the_same_replica(tmp_path_factory, changes, data):
    base = tmp_path_factory.mktemp("merge")
    reference = fresh_replica(base / "ref.db")
    with transaction(reference):
        for change in changes:
            Replica(reference).apply(change)
    shuffled = data.draw(st.permutations(changes))
    redelivered = data.draw(st.lists(st.sampled_from(changes), max_size=6))
    order = list(shuffled)
    for extra in redelivered:
        order.insert(data.draw(st.integers(0, len(order))), extra)
    other = fresh_replica(base / "other.db")
    with transaction(other):
        for change in order:
            Replica(other).apply(change)
    assert [tuple(r) for r in state(other)] == [tuple(r) for r in state(reference)]


def test_last_writer_wins_per_field_and_ties_go_to_the_greater_origin(tmp_path):
    conn = fresh_replica(tmp_path / "r.db")
    key = KEYS[0]
    at = lambda ms: format_stamp(ms, 0)  # noqa: E731
    with transaction(conn):
        replica = Replica(conn)
        replica.apply(Change(str(uuid.uuid4()), "customer", key, "S001", at(10), "t", {"email": "late@x.io"}))
        replica.apply(Change(str(uuid.uuid4()), "customer", key, "S002", at(5), "t", {"email": "early@x.io", "city": "Bilbao"}))
        replica.apply(Change(str(uuid.uuid4()), "customer", key, "S001", at(7), "t", {"city": "Madrid"}))
        replica.apply(Change(str(uuid.uuid4()), "customer", key, "S002", at(7), "t", {"city": "Sevilla"}))
        record = replica.get("customer", key)
    assert record["email"] == "late@x.io"  # the 10:00 edit beats the 05:00 one that arrived later
    assert record["city"] == "Sevilla"  # same hlc: "S002" > "S001"


@SETTINGS
@given(changes=change_sets(), data=st.data())
def test_edge_applies_shuffled_redelivered_down_batches_as_in_seq_order(tmp_path_factory, changes, data):
    """Down messages arrive in any order, some twice; gaps trigger a catch-up from the log."""
    base = tmp_path_factory.mktemp("edge")
    log = [c.with_seq(i + 1) for i, c in enumerate(changes)]
    reference = EdgeDatabase(base / "ref.db", "S009")
    reference.apply_down(log)
    edge = EdgeDatabase(base / "edge.db", "S009")
    batches = [log[i:i + 2] for i in range(0, len(log), 2)]
    deliveries = data.draw(st.permutations(batches)) + data.draw(st.lists(st.sampled_from(batches), max_size=4))
    for batch in deliveries:
        if not edge.apply_down(batch):
            edge.apply_down(log[edge.last_seq:])  # what the service's catch-up does
    assert edge.last_seq == len(log)
    assert [tuple(r) for r in state(edge.conn)] == [tuple(r) for r in state(reference.conn)]


def _store_changes(hq: HQDatabase, store: str, block: dict, n: int, clock_base: int) -> list[dict]:
    codes = CodeFormat()
    out = []
    keys = []
    for i in range(n):
        key = str(uuid.uuid4())
        keys.append(key)
        out.append(Change(str(uuid.uuid4()), "customer", key, store, format_stamp(clock_base + i, 0), "t",
                          {"code": codes.format(block["start"] + i), "first_name": f"N{i}", "last_name": store,
                           "origin_store": store, "active": True}).to_dict())
    for i, key in enumerate(itertools.islice(itertools.cycle(keys), n)):
        out.append(Change(str(uuid.uuid4()), "customer", key, store, format_stamp(clock_base + n + i, 0), "t",
                          {"city": f"C{i}"}).to_dict())
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hq_state_does_not_depend_on_batch_order_or_redelivery(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("hq")
    now = 1_700_000_000_000

    def setup(name):
        hq = HQDatabase(base / f"{name}.db", CodeFormat(), block_size=10)
        hq.conn.execute("BEGIN")
        hq.conn.execute("INSERT INTO code_blocks VALUES ('l1', 'S001', 1, 10, 'x'), ('l2', 'S002', 11, 20, 'x')")
        hq.conn.execute("INSERT INTO stores (id, password_hash, created_at) VALUES ('S001', 'h', 'x'), ('S002', 'h', 'x')")
        hq.conn.execute("COMMIT")
        return hq

    ref = setup("ref")
    s1 = _store_changes(ref, "S001", {"start": 1}, 3, now)
    s2 = _store_changes(ref, "S002", {"start": 11}, 3, now + 2)
    # A store's own changes reach HQ in its outbox order; the two stores interleave freely.
    ref.apply_store_changes("S001", s1)
    ref.apply_store_changes("S002", s2)
    other = setup("other")
    batches = [("S001", s1[i:i + 2]) for i in range(0, len(s1), 2)] + [("S002", s2[i:i + 2]) for i in range(0, len(s2), 2)]
    picks = data.draw(st.lists(st.sampled_from(range(len(batches))), max_size=5))
    sent = {"S001": 0, "S002": 0}
    order = data.draw(st.permutations(["S001"] * 3 + ["S002"] * 3))
    for store in order:
        own = [b for b in batches if b[0] == store]
        if sent[store] < len(own):
            other.apply_store_changes(*own[sent[store]])
            sent[store] += 1
        for pick in picks[:1]:  # a redelivery of something already sent
            st_, batch = batches[pick]
            if batches.index((st_, batch)) < sum(sent.values()):
                other.apply_store_changes(st_, batch)
        picks = picks[1:]
    for store, own in (("S001", [b for b in batches if b[0] == "S001"]), ("S002", [b for b in batches if b[0] == "S002"])):
        for batch in own[sent[store]:]:
            other.apply_store_changes(*batch)
    assert [tuple(r) for r in state(other.conn)] == [tuple(r) for r in state(ref.conn)]
    assert other.head() == ref.head() == len(s1) + len(s2)  # each change logged once
