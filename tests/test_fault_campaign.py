"""The standing fault campaign: real processes, seeded faults, real writers.

Two stores' lanes create and update customers over MQTT and HQ's CLI edits the
same customers, while the campaign SIGKILLs and restarts edges, HQ and brokers,
freezes HQ and edges (SIGSTOP/SIGCONT) and lanes resend requests. Once every
part is back and converged: nothing acknowledged is lost, nothing is applied
twice (unique codes, one record per create id), every replica equals HQ, and
the last writer wins: when a write of a field was acknowledged after another
write of it had finished, the later one is the value everywhere.

``LANEHUB_FAULT_STEPS`` (default 8, about a minute) sets the campaign's length
and ``LANEHUB_FAULT_SEED`` its seed; a failure prints both, to replay it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass

from helpers import db_query, edge_db, hq_db, replica_state, wait_converged, wait_until

from lanehub.protocol import topics

SEED = int(os.environ.get("LANEHUB_FAULT_SEED", "20240613"))
STEPS = int(os.environ.get("LANEHUB_FAULT_STEPS", "8"))
LANE_TIMEOUT = 2.0  # a lane's deadline: it stops waiting, and the edge refuses the request after it
MARGIN = 0.01  # seconds: "after" means after by more than this (stamps are milliseconds)
CITIES = ("Paris", "London", "Rome", "Oslo")
TARGETS = 3  # customers every site edits


@dataclass
class Write:
    """One write of a customer's city: acknowledged, refused, or unknown (timed out).
    ``id`` is also who HQ's change log says made it (the lane's ``user``, the CLI's ``--by``)."""

    id: str
    site: str
    key: str
    value: str
    sent: float
    end: float = 0.0  # the ack, or the latest time an unknown outcome could have been applied
    acked: bool = False
    unknown: bool = False


class Journal:
    """What the writers did, as the writers saw it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.writes: dict[str, Write] = {}  # request id (or a CLI run's id) -> write
        self.creates: dict[str, dict] = {}  # create id -> {"first_name", "acked": customer | None}
        self.cli_failures: list[str] = []
        self.resends = 0


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


class LaneWriter(threading.Thread):
    """A lane at ``store`` creating customers and editing the targets' city, now and then
    resending an earlier request with the same id (as a lane does after a timeout)."""

    def __init__(self, client, store: str, targets: list[str], journal: Journal, rng: random.Random):
        super().__init__(daemon=True, name=f"lane-{store}")
        self.client, self.store, self.targets, self.journal, self.rng = client, store, targets, journal, rng
        self.sent: list[dict] = []
        self.stop = threading.Event()
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            roll = self.rng.random()
            if roll < 0.1 and self.sent:
                self.journal.resends += 1
                self.send(dict(self.rng.choice(self.sent)))
            elif roll < 0.35:
                self.n += 1
                request = {"op": "create", "id": str(uuid.uuid4()),
                           "customer": {"first_name": f"{self.store}n{self.n}", "last_name": "Campaign"}}
                with self.journal.lock:
                    self.journal.creates[request["id"]] = {"first_name": request["customer"]["first_name"], "acked": None}
                self.send(request)
            else:
                key, city = self.rng.choice(self.targets), self.rng.choice(CITIES)
                request_id = str(uuid.uuid4())
                request = {"op": "update", "id": request_id, "user": request_id, "ref": key, "customer": {"city": city}}
                with self.journal.lock:
                    self.journal.writes[request_id] = Write(request_id, self.store, key, city, time.time())
                self.send(request)
            time.sleep(self.rng.uniform(0.05, 0.3))

    def send(self, request: dict) -> None:
        self.sent.append(request)
        deadline = time.time() + LANE_TIMEOUT
        payload = json.dumps({"v": 1, **request, "deadline": deadline}).encode()
        reply = None
        try:
            answer = self.client.request(topics.customer_req(self.store, "L1"), payload,
                                         f"test/{self.store}/L1/reply/{uuid.uuid4().hex[:8]}", LANE_TIMEOUT)
            reply = json.loads(answer.payload)
        except Exception:  # timed out (a frozen edge, a broker away): it may have been applied until the deadline
            pass
        now = time.time()
        with self.journal.lock:
            if request["op"] == "create":
                if reply and reply["ok"] and self.journal.creates[request["id"]]["acked"] is None:
                    self.journal.creates[request["id"]]["acked"] = reply["customer"]
                return
            write = self.journal.writes[request["id"]]
            if reply and reply["ok"]:
                if not write.acked:  # a resend of a request already done is no new write
                    write.acked, write.unknown, write.end = True, False, now
            elif reply is None and not write.acked:
                write.unknown, write.end = True, max(write.end, deadline + MARGIN)


class HqWriter(threading.Thread):
    """An operator editing the targets' city with `lanehub hq customers edit`."""

    def __init__(self, chain, targets: list[str], journal: Journal, rng: random.Random):
        super().__init__(daemon=True, name="hq-cli")
        self.chain, self.targets, self.journal, self.rng = chain, targets, journal, rng
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            key, city = self.rng.choice(self.targets), self.rng.choice(CITIES)
            write = Write(str(uuid.uuid4()), "hq", key, city, time.time())
            result = self.chain.hq_cli("customers", "edit", key, "--city", city, "--by", write.id, check=False)
            write.end = time.time()
            write.acked = result.returncode == 0
            write.unknown = not write.acked
            with self.journal.lock:
                self.journal.writes[write.id] = write
                if not write.acked:
                    self.journal.cli_failures.append(result.stderr.strip().splitlines()[-1:][0] if result.stderr else "?")
            time.sleep(self.rng.uniform(0.1, 0.5))


class Faults:
    """SIGKILL and restart, or freeze and thaw, one part of the chain at a time."""

    def __init__(self, chain, rng: random.Random):
        self.chain, self.rng = chain, rng
        self.done: list[str] = []

    def one(self) -> None:
        chain, rng = self.chain, self.rng
        store = rng.choice(chain.stores)
        fault = rng.choice(["kill_edge", "kill_hq", "kill_hq_broker", "kill_store_broker", "pause_hq", "pause_edge"])
        self.done.append(f"{fault}({store})" if "edge" in fault or "store" in fault else fault)
        down = rng.uniform(0.3, 2.5)
        if fault == "kill_edge":
            chain.edges[store].kill()
            time.sleep(down)
            chain.edges[store].start()
        elif fault == "kill_hq":
            chain.hq.kill()
            time.sleep(down)
            chain.hq.start()
        elif fault == "kill_hq_broker":
            chain.hq_broker.kill()
            time.sleep(down)
            chain.hq_broker.start()
        elif fault == "kill_store_broker":
            chain.store_brokers[store].kill()
            time.sleep(down)
            chain.store_brokers[store].start()
        else:
            process = (chain.hq if fault == "pause_hq" else chain.edges[store]).process
            process.send_signal(signal.SIGSTOP)
            try:
                wait_until(lambda: process_state(process.pid) == "T", 5, 0.01, message="the process to stop")
                time.sleep(down)
            finally:
                process.send_signal(signal.SIGCONT)


def expected_values(writes: list[Write], initial: str) -> set[str]:
    """The values last-writer-wins allows: those of writes that no acknowledged write
    started after (by more than MARGIN); the initial value only if none was acknowledged."""
    applied = [w for w in writes if w.acked or w.unknown]
    acked = [w for w in applied if w.acked]
    allowed = {w.value for w in applied if not any(later.sent > w.end + MARGIN for later in acked)}
    return allowed if acked else allowed | {initial}


def test_fault_campaign(make_chain, mqtt):
    rng = random.Random(SEED)
    campaign = f"LANEHUB_FAULT_SEED={SEED} LANEHUB_FAULT_STEPS={STEPS}"
    chain = make_chain(block_size=5, code_low_water=2, outbox_retry=1.0)
    targets = [json.loads(chain.hq_cli("customers", "add", "--first-name", f"Target{i}", "--last-name", "Campaign",
                                       "--city", "Madrid").stdout)["id"] for i in range(TARGETS)]
    wait_converged(chain)
    journal = Journal()
    lanes = {}
    for store in chain.stores:
        lanes[store] = mqtt(chain.store_brokers[store].port)
        lanes[store].subscribe("test/#", lambda m: None)
    writers = [LaneWriter(lanes[store], store, targets, journal, random.Random(rng.random())) for store in chain.stores]
    writers.append(HqWriter(chain, targets, journal, random.Random(rng.random())))
    faults = Faults(chain, random.Random(rng.random()))
    for writer in writers:
        writer.start()
    try:
        for _ in range(STEPS):
            faults.one()
            time.sleep(rng.uniform(0.5, 1.5))
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(30)
    print(f"{campaign}: faults {faults.done}, {len(journal.writes)} edits, {len(journal.creates)} creates, "
          f"{journal.resends} resends")

    hq_state = wait_converged(chain, 120)
    for store in chain.stores:
        assert replica_state(edge_db(chain, store)) == hq_state, f"{campaign}: {store} differs from HQ"
    assert not journal.cli_failures, f"{campaign}: HQ CLI edits failed: {journal.cli_failures}"

    # Nothing acknowledged is lost, nothing duplicated; a provisional code still finds its customer.
    rows = db_query(hq_db(chain), "SELECT id, code, first_name FROM customers")
    by_name: dict[str, list] = {}
    for row in rows:
        by_name.setdefault(row["first_name"], []).append(row)
    assert len({row["code"] for row in rows}) == len(rows), f"{campaign}: a code is used twice"
    aliases = {row["alias"]: row["customer_id"] for row in db_query(hq_db(chain), "SELECT alias, customer_id FROM code_aliases")}
    acked_creates = 0
    for create_id, create in journal.creates.items():
        made = by_name.get(create["first_name"], [])
        assert len(made) <= 1, f"{campaign}: create {create_id} made {len(made)} customers"
        if create["acked"]:
            acked_creates += 1
            customer = create["acked"]
            assert made and made[0]["id"] == customer["id"], f"{campaign}: acknowledged create {create_id} lost"
            if "-P" in customer["code"]:
                assert aliases[customer["code"]] == customer["id"]
            else:
                assert made[0]["code"] == customer["code"]
    assert acked_creates, f"{campaign}: no create was acknowledged"

    # Last writer wins, per target.
    cities = {row["id"]: row["city"] for row in db_query(hq_db(chain), "SELECT id, city FROM customers")}
    acked_edits = 0
    for key in targets:
        writes = sorted((w for w in journal.writes.values() if w.key == key), key=lambda w: w.sent)
        acked_edits += sum(w.acked for w in writes)
        allowed = expected_values(writes, "Madrid")
        assert cities[key] in allowed, (
            f"{campaign}: {key} has {cities[key]!r}, last-writer-wins allows {sorted(allowed)}; writes: "
            + "; ".join(f"{w.site} {w.value} {w.sent:.3f}-{w.end:.3f} {'ack' if w.acked else 'unknown' if w.unknown else 'refused'}"
                        for w in writes))
    assert acked_edits, f"{campaign}: no edit was acknowledged"

    # Every acknowledged edit is one change in HQ's log (an edit to the value already
    # shown too), none is applied twice (a resend), and their stamps follow real time:
    # an edit acknowledged before another was sent has the smaller stamp.
    logged: dict[str, list] = {}
    for row in db_query(hq_db(chain), "SELECT by, hlc, origin, fields FROM changes WHERE entity = 'customer'"):
        if "city" in json.loads(row["fields"]):
            logged.setdefault(row["by"], []).append(f"{row['hlc']}|{row['origin']}")
    stamps = {}
    for write in journal.writes.values():
        found = logged.get(write.id, [])
        if write.acked:
            assert len(found) == 1, f"{campaign}: acknowledged edit {write} is {len(found)} changes at HQ"
        else:
            assert len(found) <= (1 if write.unknown else 0), f"{campaign}: edit {write} is {len(found)} changes at HQ"
        if found:
            stamps[write.id] = found[0]
    for key in targets:
        applied = [w for w in journal.writes.values() if w.key == key and w.id in stamps]
        for earlier in applied:
            for later in applied:
                if later.acked and later.sent > earlier.end + MARGIN:
                    assert stamps[later.id] > stamps[earlier.id], (
                        f"{campaign}: {later} was sent after {earlier} ended but sorts before it "
                        f"({stamps[later.id]} < {stamps[earlier.id]})")
