"""A shop for lane tests: one chain per test module with a catalogue, a rate,
customers in every payment state and cards; and ``Lane``, a lane POS client."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import uuid

import pytest
from helpers import kill_chain, start_chain, wait_converged, wait_until
from in_process_cli import run_in_process

from lanehub.chain.local import Chain
from lanehub.protocol import topics
from lanehub.protocol.lane import DeviceStatus, TicketChange, TicketState
from lanehub.protocol.ticket_view import TicketView
from lanehub.runtime.mqtt import BrokerSettings, MqttClient

PRODUCTS_CSV = """sku,description,brand,size,retail_price,tax_rate,active,barcodes
MILK,Whole milk,Dairyco,1L,1.20,4,yes,8410000000011|8410000000012
BREAD,Baguette,Bakers,250g,0.95,4,yes,2000000000015
WINE,Red wine,Rioja,75cl,9.99,21,yes,
"""


class Lane:
    """A lane POS on the store broker: sends events, holds the lane's ticket (the
    retained state, then each change), and queues it as it is after each of them."""

    def __init__(self, client, store: str, lane: str):
        self.client, self.store, self.lane = client, store, lane
        self.states: queue.Queue = queue.Queue()
        self.jobs: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()
        self.changes: queue.Queue = queue.Queue()  # every change's payload as it came
        self.view = TicketView()
        self._lock = threading.Lock()
        client.subscribe(topics.ticket_state(store, lane), self._on_state)
        client.subscribe(topics.ticket_change(store, lane), self._on_change)
        client.subscribe(topics.printer_job(store, lane, "printer"), lambda m: self.jobs.put(json.loads(m.payload)))
        client.subscribe(topics.error(store), lambda m: self.errors.put(json.loads(m.payload)))

    def _on_state(self, msg) -> None:
        with self._lock:
            self.view.full(TicketState.parse(msg.payload))
            self.states.put(self.view.state().to_dict())

    def _on_change(self, msg) -> None:
        self.changes.put(msg.payload)
        with self._lock:
            if self.view.change(TicketChange.parse(msg.payload)):
                self.states.put(self.view.state().to_dict())

    def _send(self, topic: str, payload: dict) -> str:
        event_id = payload.setdefault("id", str(uuid.uuid4()))
        self.client.publish(topic, json.dumps({"v": 1, **payload}).encode())
        return event_id

    def state_for(self, cause: str, timeout: float = 10) -> dict:
        def seen():
            while True:
                try:
                    state = self.states.get_nowait()
                except queue.Empty:
                    return None
                if state["cause"] == cause:
                    return state
        return wait_until(seen, timeout, 0.01, f"ticket state caused by {cause}")

    def scan(self, code: str, timeout: float = 10, **extra) -> dict:
        return self.state_for(self._send(topics.scan(self.store, self.lane), {"code": code, "device": "SC1", "ts": 0} | extra),
                              timeout)

    def card(self, number: str) -> dict:
        return self.state_for(self._send(topics.card(self.store, self.lane), {"card": number, "device": "CR1"}))

    def cmd(self, op: str, **fields) -> dict:
        return self.state_for(self._send(topics.ticket_cmd(self.store, self.lane), {"op": op} | fields))

    def raw(self, leaf_topic: str, payload: bytes) -> None:
        self.client.publish(leaf_topic, payload)

    def next_error(self, timeout: float = 10) -> dict:
        return self.errors.get(timeout=timeout)


def announce_printer(port: int, store: str, device: str, lane: str = "") -> None:
    """A printer bridge's retained status, as if one ran: the edge knows the printer."""
    client = MqttClient(BrokerSettings(port=port), f"test-printer-{uuid.uuid4().hex[:8]}")
    client.start()
    try:
        assert client.wait_connected(10)
        status = DeviceStatus(state="online", kind="printer", lane=lane, detail="")
        assert client.publish_acked(topics.device_status(store, device), status.to_json(), retain=True).ok
    finally:
        client.stop()


@pytest.fixture(scope="module")
def shop(tmp_path_factory, request):
    """One chain for the module (catalogue and customers are set up once);
    every test takes its own lane, so tickets never mix. A test module may set
    SHOP_STORE_SETTINGS (more [store] keys per store) and SHOP_PRODUCTS_CSV (the
    catalogue: keep PRODUCTS_CSV's rows, the rates and customers refer to them)."""
    workdir = tmp_path_factory.mktemp("shop")
    more = getattr(request.module, "SHOP_STORE_SETTINGS", {})
    chain = Chain(workdir, ("S001", "S002"), cli=run_in_process, store_settings={store: values | more.get(store, {}) for store, values in {
        # Every lane's receipts go to the store printer "printer", which ``Lane`` watches.
        "S001": {"name": "Lanehub Market Centro", "address": "Calle Mayor 1", "tax_id": "B12345678", "print_retry": 1.0,
                 "printer": "printer"},
        "S002": {"block_defaulters": True, "coupon_offline": "allow"},
    }.items()})
    try:
        start_chain(chain)
        announce_printer(chain.store_brokers["S001"].port, "S001", "printer")
        csv = workdir / "products.csv"
        csv.write_text(getattr(request.module, "SHOP_PRODUCTS_CSV", PRODUCTS_CSV))
        chain.hq_cli("products", "import", str(csv))
        chain.hq_cli("rates", "add", "vip", "--name", "VIP", "--start", "2020-01-01")
        chain.hq_cli("rates", "line", "VIP", "MILK", "--discount", "10")
        chain.hq_cli("rates", "line", "VIP", "WINE", "--price", "12.00")
        people = {}
        for first, extra in [("Ann", ["--rate", "VIP", "--tax-id", "12345678Z"]), ("Pete", ["--payment-status", "pending"]),
                             ("Dave", ["--payment-status", "defaulter"]), ("Cleo", ["--status", "closed"]),
                             ("Ina", []), ("Nora", ["--no-paper"])]:
            out = chain.hq_cli("customers", "add", "--first-name", first, "--last-name", "Shopper", *extra).stdout
            people[first] = json.loads(out)
        chain.hq_cli("customers", "deactivate", people["Ina"]["code"])
        chain.hq_cli("customers", "add-card", people["Ann"]["code"], "CARD-0001")
        chain.hq_cli("customers", "add-card", people["Dave"]["code"], "CARD-0004")
        chain.hq_cli("customers", "add-card", people["Nora"]["code"], "CARD-0006", "--kind", "loyalty")
        wait_converged(chain)
        chain.people = people
        yield chain
    finally:
        for proc in [chain.hq, *chain.edges.values()]:
            if proc is not None:
                print(f"----- {proc.name} log -----\n{proc.tail(40)}")
        kill_chain(chain)


LANES = itertools.count(1)


@pytest.fixture
def lane(shop, mqtt):
    return Lane(mqtt(shop.store_brokers["S001"].port), "S001", f"L{next(LANES)}")
