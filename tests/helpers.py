"""Plain helpers the tests share (no fixtures: those live in conftest.py and the
fixture modules it lists in ``pytest_plugins``).

- ``wait_until``: poll a condition, fail the test with a message on timeout.
- ``start_chain`` / ``kill_chain``: boot a ``lanehub.chain.local.Chain`` and wait
  for every edge's snapshot; SIGKILL every part of it.
- reading replicas straight from their SQLite files: ``db_query``, ``db_value``,
  ``hq_db``, ``edge_db``, ``edge_ready``, ``customer_by``, ``replica_state``,
  ``last_seq``, ``hq_head``, ``wait_converged``.
- ``lane_request``: a lane's customer request over MQTT 5 request/response.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from hq.storage import connect_hq, is_postgres
from lanehub.chain.local import Chain
from lanehub.protocol import topics
from lanehub.protocol.lane import CustomerReply
from lanehub.runtime.mqtt import MqttClient


def wait_until(predicate, timeout: float = 20, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test with ``message`` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")


# --- a whole chain on this machine ------------------------------------------------------

def start_chain(chain: Chain) -> Chain:
    chain.start()
    for store in chain.stores:
        wait_until(lambda s=store: edge_ready(chain, s), 30, message=f"edge {store} snapshot")
    return chain


def kill_chain(chain: Chain) -> None:
    for proc in [*chain.edges.values(), chain.hq, *chain.hq_processes.values()]:
        if proc is not None:
            proc.kill()
    for broker in [*chain.store_brokers.values(), chain.hq_broker]:
        broker.kill()


# --- reading replicas straight from their SQLite files ---------------------------------

def db_query(path: str | Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    if is_postgres(path):  # HQ's database on PostgreSQL (Chain(hq_db=...))
        pg = connect_hq(str(path))
        try:
            return pg.execute(sql, args).fetchall()
        finally:
            pg.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_value(path: str | Path, sql: str, args: tuple = ()):
    """The first column of the first row, or None while there is no row yet
    (for ``wait_until``: a record that has not arrived is not an error)."""
    rows = db_query(path, sql, args)
    return rows[0][0] if rows else None


def hq_db(chain: Chain) -> str:
    """[hq] db: a SQLite file's path, or a postgresql:// URL."""
    return chain.hq_db


def edge_db(chain: Chain, store: str) -> Path:
    return chain.workdir / f"{store}.db"


def edge_ready(chain: Chain, store: str) -> bool:
    path = edge_db(chain, store)
    if not path.exists():
        return False
    try:
        rows = db_query(path, "SELECT value FROM meta WHERE key = 'snapshot_done'")
    except sqlite3.OperationalError:
        return False
    return bool(rows) and rows[0][0] == "1"


def customer_by(path: Path, column: str, value) -> dict | None:
    rows = db_query(path, f"SELECT * FROM customers WHERE {column} = ?", (value,))
    return dict(rows[0]) if rows else None


def replica_state(path: Path) -> dict:
    """Every replicated record with its fields and clocks: equal dicts mean identical replicas."""
    from lanehub.domain.model import ENTITIES

    state = {}
    for spec in ENTITIES.values():
        columns = ", ".join(["id", *(f"[{f}]" for f in spec.fields), "_clocks"])
        rows = db_query(path, f"SELECT {columns} FROM [{spec.table}] ORDER BY id")
        state[spec.name] = [tuple(row) for row in rows]
    return state


def last_seq(path: Path) -> int:
    rows = db_query(path, "SELECT value FROM meta WHERE key = 'last_seq'")
    return int(rows[0][0]) if rows else 0


def hq_head(chain: Chain) -> int:
    return db_query(hq_db(chain), "SELECT coalesce(max(seq), 0) FROM changes")[0][0]


def wait_converged(chain: Chain, timeout: float = 30) -> dict:
    """Wait until every edge has applied HQ's head and has an empty outbox; return HQ's state."""

    def converged():
        head = hq_head(chain)
        for store in chain.stores:
            path = edge_db(chain, store)
            if last_seq(path) != head:
                return False
            if db_query(path, "SELECT count(*) FROM outbox")[0][0]:
                return False
        return head == hq_head(chain)

    wait_until(converged, timeout, 0.2, "every edge to reach HQ's head with an empty outbox")
    return replica_state(hq_db(chain))


# --- a lane's requests over MQTT --------------------------------------------------------

def lane_request(client: MqttClient, store: str, lane: str, payload: dict, timeout: float = 10) -> dict:
    """A lane's customer request over MQTT 5 request/response; returns the reply object."""
    reply = client.request(topics.customer_req(store, lane), json.dumps({"v": 1, **payload}).encode(),
                           f"test/{store}/{lane}/reply/{uuid.uuid4().hex[:8]}", timeout)
    data = json.loads(reply.payload)
    CustomerReply.from_dict(data)  # the reply itself is well-formed
    return data


def read_events(response, count: int) -> list[str]:
    """The data of the next ``count`` SSE events (comments and retry lines skipped)."""
    found, data = [], []
    while len(found) < count:
        line = response.readline().decode()
        if not line:
            break
        line = line.rstrip("\n")
        if line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            found.append("\n".join(data))
            data = []
    return found


def cli_walk(group, ctx, prefix: tuple[str, ...] = ()):
    """Every command under a click ``group``, groups and their subcommands at every depth: (path, command)."""
    import click

    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = prefix + (name,)
        yield path, command
        if isinstance(command, click.Group):
            yield from cli_walk(command, click.Context(command, parent=ctx, info_name=name), path)


def cli_commands() -> list:
    """Every `lanehub` command and subcommand: [(path, command)]."""
    import click

    from lanehub.cli.main import main

    return list(cli_walk(main, click.Context(main, info_name="lanehub")))


def browser_login(page, url: str, username: str, password: str) -> None:
    """Log ``page`` (Playwright) in at the site ``url`` as a person does; it lands on the customers list."""
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/customers/")
