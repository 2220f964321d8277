"""Numbers a store hands out itself (ticket numbers, provisional customer codes)
are never handed out twice, even when the store's database is older than what
HQ already has from it: after `lanehub edge restore` of an older backup (and on
a replaced box) the store goes on after what came back down from HQ, so HQ
never rejects a new sale or a new customer as a reuse of an old number."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from helpers import db_query, db_value, edge_db, edge_ready, hq_db, lane_request, replica_state, wait_converged, wait_until
from shop import PRODUCTS_CSV, Lane

MILK = "8410000000011"


# Restores refuse while any process holds a database open: setup commands run as processes.
CHAIN_CLI_IN_PROCESS = False


def edge_cli(chain, *args: str) -> subprocess.CompletedProcess:
    return chain.edge_cli("S001", *args, check=False)


def backup(chain, dest: Path) -> Path:
    result = edge_cli(chain, "backup", str(dest))
    assert result.returncode == 0, result.stderr
    return Path(re.fullmatch(r"(\S+) \d+ bytes\n", result.stdout).group(1))


def restore(chain, copy: Path) -> None:
    chain.edges["S001"].stop()
    result = edge_cli(chain, "restore", str(copy))
    assert result.returncode == 0, result.stderr
    chain.edges["S001"].start()


def sell(lane: Lane) -> dict:
    """One ticket: a scan opens it, close makes the sale; returns the closed state."""
    lane.scan(MILK)
    state = lane.cmd("close")
    assert state["status"] == "closed", state
    return state


def closed_at(chain, ticket: str) -> str:
    """When the store closed ``ticket``, from its receipt (kept as the store wrote it)."""
    rows = db_query(edge_db(chain, "S001"), "SELECT receipt FROM print_jobs WHERE ticket = ?", (ticket,))
    assert len(rows) == 1, ticket
    return json.loads(rows[0][0])["closed_at"]


def rejections(chain) -> tuple[int, int, str]:
    """HQ's rejections, the store's, and what `lanehub edge rejections` prints."""
    out = edge_cli(chain, "rejections")
    assert out.returncode == 0, out.stderr
    return (db_value(hq_db(chain), "SELECT count(*) FROM rejections"),
            db_value(edge_db(chain, "S001"), "SELECT count(*) FROM rejections"), out.stdout)


def sales(path: Path, lane: str) -> dict[str, tuple]:
    return {row["ticket"]: (row["closed_at"], row["total"], row["lines"]) for row in
            db_query(path, "SELECT ticket, closed_at, total, lines FROM sales WHERE store = 'S001' AND lane = ?", (lane,))}


def test_a_restored_edge_numbers_new_tickets_after_the_sales_that_came_back_from_hq(make_chain, mqtt, tmp_path):
    chain = make_chain(stores=("S001",))
    csv = tmp_path / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))
    wait_converged(chain)
    client = mqtt(chain.store_brokers["S001"].port)
    l1, l2 = Lane(client, "S001", "L1"), Lane(client, "S001", "L2")

    before = [sell(l1)["ticket"] for _ in range(2)]
    ghost = l2.scan(MILK)["ticket"]  # open on L2 when the backup is taken
    wait_converged(chain)
    copy = backup(chain, tmp_path / "edge-S001.db")

    after = [sell(l1)["ticket"] for _ in range(2)]
    assert l2.cmd("close")["ticket"] == ghost  # the ticket open in the backup is a sale now
    assert before + after == [f"S001-L1-{n}" for n in range(1, 5)]
    wait_converged(chain)  # HQ has them, and they came back down
    assert set(sales(hq_db(chain), "L1")) == set(before + after) and ghost in sales(hq_db(chain), "L2")
    assert rejections(chain) == (0, 0, "no rejected changes\n")

    restore(chain, copy)
    wait_converged(chain, 40)
    assert set(sales(edge_db(chain, "S001"), "L1")) == set(before + after)  # caught up from HQ

    # The next ticket on L1 goes on after the last sale HQ sent back, not after the backup's counter.
    new = sell(l1)
    assert new["ticket"] not in before + after
    assert new["ticket"] == "S001-L1-5"
    # The ticket open in the backup was closed after it (a sale at HQ): it is not carried on.
    scanned = l2.scan(MILK)
    assert scanned["ticket"] != ghost and len(scanned["lines"]) == 1
    new2 = l2.cmd("close")
    hq_state = wait_converged(chain, 30)
    assert rejections(chain) == (0, 0, "no rejected changes\n")
    at_hq = sales(hq_db(chain), "L1")
    assert len(at_hq) == 5 and at_hq[new["ticket"]][:2] == (closed_at(chain, new["ticket"]), new["total"])
    assert sales(hq_db(chain), "L2")[new2["ticket"]][:2] == (closed_at(chain, new2["ticket"]), new2["total"])
    assert replica_state(edge_db(chain, "S001")) == hq_state


def offline_until_provisional(chain, client, prefix: str) -> list[dict]:
    """HQ unreachable (its broker stopped): lane creates until the store's leased
    numbers (a block of 3) run out and one customer gets a provisional code."""
    db = edge_db(chain, "S001")
    wait_until(lambda: db_value(db, "SELECT coalesce(sum(end - next + 1), 0) FROM code_blocks WHERE next <= end") == 3,
               20, message="a full code block at S001")
    chain.hq_broker.stop()
    made = []
    for i in range(4):
        reply = lane_request(client, "S001", "L1", {"op": "create", "customer": {"first_name": f"{prefix}{i}",
                                                                                 "last_name": "Offline"}})
        assert reply["ok"], reply
        made.append(reply["customer"])
    assert [("-P" in c["code"]) for c in made] == [False, False, False, True]
    chain.hq_broker.start()
    return made


def survived(chain, made: list[dict]) -> None:
    """Customers made offline are at HQ and in the store, and no code is held twice."""
    for path in (hq_db(chain), edge_db(chain, "S001")):
        assert {c["id"] for c in made} <= {row[0] for row in db_query(path, "SELECT id FROM customers")}
    codes = [row[0] for row in db_query(hq_db(chain), "SELECT code FROM customers")]
    aliases = [row[0] for row in db_query(hq_db(chain), "SELECT alias FROM code_aliases")]
    assert len(set(codes + aliases)) == len(codes) + len(aliases)
    provisional = made[-1]
    assert provisional["code"] in aliases  # replaced by a permanent code, still resolving to this customer
    shown = json.loads(chain.edge_cli("S001", "customers", "show", provisional["code"]).stdout)
    assert shown["id"] == provisional["id"] and "-P" not in shown["code"]


def lane_client(mqtt, chain):
    client = mqtt(chain.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    return client


def test_a_restored_edge_never_reuses_a_provisional_code_hq_replaced(make_chain, mqtt, tmp_path):
    chain = make_chain(stores=("S001",), block_size=3, code_low_water=1)
    db = edge_db(chain, "S001")
    lane = lane_client(mqtt, chain)

    copy = backup(chain, tmp_path / "edge-S001.db")  # no provisional code given out yet
    first = offline_until_provisional(chain, lane, "Before")
    assert first[-1]["code"] == "CUST-S001-P0001"
    wait_converged(chain, 40)  # HQ gave it a permanent code and keeps P0001 as its alias
    assert db_value(db, "SELECT count(*) FROM code_aliases WHERE alias = 'CUST-S001-P0001'") == 1

    restore(chain, copy)
    wait_converged(chain, 40)  # the alias came back down with the rest
    later = offline_until_provisional(chain, lane, "After")
    assert later[-1]["code"] == "CUST-S001-P0002"  # P0001 is another customer's (an alias): skipped

    hq_state = wait_converged(chain, 40)
    assert rejections(chain) == (0, 0, "no rejected changes\n")
    survived(chain, first + later)
    assert replica_state(db) == hq_state


def test_a_replaced_box_goes_on_after_the_tickets_and_provisional_codes_hq_sent_back(make_chain, mqtt, tmp_path):
    """A new box (an empty database: no lanes, no counters) for a store with a past."""
    chain = make_chain(stores=("S001",), block_size=3, code_low_water=1)
    csv = tmp_path / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))
    client = lane_client(mqtt, chain)
    l1 = Lane(client, "S001", "L1")
    sold = [sell(l1)["ticket"] for _ in range(3)]
    first = offline_until_provisional(chain, client, "Old")
    wait_converged(chain, 40)

    chain.edges["S001"].stop()
    db = edge_db(chain, "S001")
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists():
            path.rename(f"{path}.old-box")
    chain.edges["S001"].start()
    wait_until(lambda: edge_ready(chain, "S001"), 30, message="the new box's snapshot")
    wait_converged(chain, 40)
    assert db_value(db, "SELECT count(*) FROM lanes") == 0

    new = sell(l1)
    assert new["ticket"] == "S001-L1-4" and new["ticket"] not in sold
    later = offline_until_provisional(chain, client, "New")
    assert later[-1]["code"] == "CUST-S001-P0002"
    hq_state = wait_converged(chain, 40)
    assert rejections(chain) == (0, 0, "no rejected changes\n")
    assert sales(hq_db(chain), "L1")[new["ticket"]][:2] == (closed_at(chain, new["ticket"]), new["total"])
    survived(chain, first + later)
    assert replica_state(db) == hq_state
