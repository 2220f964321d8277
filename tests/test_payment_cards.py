"""One payment-card policy (lanehub.domain.payment_cards) at every entry: a card number of
any network, bare, spaced or in a bank track, is refused with its masked form on
the lane topics, at the register, by HQ's CLI, pages, API, imports and batches,
and is never on a broker, in a database or in a log; the upgrade purges the
numbers kept before (lanehub.replication.card_purge)."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlite_utils
from broker_users import hq_operator
from helpers import db_query, db_value, edge_db, hq_db, lane_request, wait_converged, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from route_walk import CSRF_RE, get, login
from shop import LANES, PRODUCTS_CSV, Lane

from lanehub.domain.codes import CodeFormat
from lanehub.domain.payment_cards import RedactingFilter, find_payment_card, is_payment_card, luhn_ok, mask, redact, refusal
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.envelope import excerpt
from lanehub.replication.replica import Replica
from lanehub.replication.schema import replica_migrations
from lanehub.replication.sqlite import connect
from lanehub.runtime.mqtt import MqttClient

# A product whose EAN-13 is also Luhn-valid and starts with 4: the catalogue knows it,
# so scanning it sells the product (the payment-card rule is not applied to products).
PRODUCT_EAN = "4006381000093"
SHOP_PRODUCTS_CSV = PRODUCTS_CSV + f"SOAP,Soap,Clean,100g,1.50,21,yes,{PRODUCT_EAN}\n"
PASSWORD = "correct horse battery"

VISA = "4111111111111111"
MASKED_VISA = "411111******1111"


def luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it Luhn-valid."""
    for digit in "0123456789":
        if luhn_ok(body + digit):
            return body + digit
    raise AssertionError(body)


# (network, IIN prefix, length): one per issuer range the policy must cover, the
# ones the old prefix table of the card bridge missed included (Mir, RuPay 81/82,
# UnionPay 81, Troy 9792, UATP, UzCard, Humo, Belkart, GPN).
NETWORKS = [
    ("Visa", "4", 16), ("Visa 13", "4", 13), ("Visa 19", "4", 19), ("Mastercard", "51", 16), ("Mastercard", "55", 16),
    ("Mastercard 2-series", "2221", 16), ("Mastercard 2-series", "2720", 16), ("Amex", "34", 15), ("Amex", "37", 15),
    ("Discover", "6011", 16), ("Discover", "644", 16), ("Discover", "65", 19), ("Diners", "300", 14),
    ("Diners", "36", 14), ("Diners", "38", 16), ("Diners", "39", 16), ("JCB", "3528", 16), ("JCB", "3589", 19),
    ("UnionPay", "62", 19), ("UnionPay", "81", 16), ("Maestro", "50", 16), ("Maestro", "56", 13),
    ("Maestro", "6759", 19), ("Mir", "2200", 16), ("Mir", "2204", 19), ("RuPay", "60", 16), ("RuPay", "65", 16),
    ("RuPay", "81", 16), ("RuPay", "82", 16), ("RuPay", "508", 16), ("RuPay", "353", 16), ("RuPay", "356", 16),
    ("Troy", "9792", 16), ("Troy", "65", 16), ("Verve", "506099", 16), ("Verve", "650002", 19),
    ("Elo", "636368", 16), ("Elo", "504175", 16), ("Hipercard", "606282", 16), ("UATP", "1", 15),
    ("GPN", "1946", 16), ("UzCard", "8600", 16), ("Humo", "9860", 16), ("Belkart", "9112", 16),
    ("a network of tomorrow", "3", 17), ("a network of tomorrow", "2999", 18),
]


def pan_of(prefix: str, length: int, fill: str = "0123456789") -> str:
    body = prefix + (fill * 20)[: length - len(prefix) - 1]
    return luhn_complete(body)


def formats(pan: str) -> dict[str, str]:
    """The ways a number reaches lanehub: bare, as printed, and as a reader types the stripe."""
    return {
        "bare": pan,
        "spaced": " ".join(pan[i:i + 4] for i in range(0, len(pan), 4)),
        "dashed": "-".join(pan[i:i + 4] for i in range(0, len(pan), 4)),
        "track 1": f"%B{pan}^DOE/JOHN^2512101000000000000?",
        "track 2": f";{pan}=2512101123?",
    }


# --- the policy ----------------------------------------------------------------------------

@pytest.mark.parametrize("network, prefix, length", NETWORKS, ids=[f"{n[0]} {n[1]}" for n in NETWORKS])
def test_every_network_is_a_payment_card_in_every_format(network, prefix, length):
    pan = pan_of(prefix, length)
    for name, text in formats(pan).items():
        assert is_payment_card(text), (network, name, text)
        assert find_payment_card(f"note: {text} (given at the till)") == pan, (network, name)
        cleaned = redact(f"x {text} y")
        assert pan not in cleaned and pan[:6] + "*" in cleaned
    assert mask(pan) == pan[:6] + "*" * (length - 10) + pan[-4:]


def test_a_bank_track_is_a_payment_card_whatever_its_prefix_and_luhn():
    assert is_payment_card("%B9000000000000002^DOE/JOHN^2512101?")  # format B: a financial card
    assert is_payment_card(";9000000000000002=2512101?")  # track 2 with expiry and service code
    assert find_payment_card("%A600123456^PEREZ/ANA^?;9000000000000002=2512101?") == "9000000000000002"
    assert not luhn_ok("9000000000000002")


@pytest.mark.parametrize("text, why", [
    ("4111111111111112", "not Luhn-valid"),
    (luhn_complete("41111111111"), "12 digits"),
    (luhn_complete("4111111111111111111"), "20 digits"),
    (luhn_complete("900000000000000"), "first digit 9, no known range"),
    (luhn_complete("700000000000000"), "first digit 7"),
    (luhn_complete("000000000000000"), "first digit 0"),
    (luhn_complete("100000000000000"), "1: only 15 digits is UATP"),
    ("CARD-0001", "a loyalty card"),
    (";600123456=9912?", "a loyalty track 2: no service code after the expiry"),
    ("%A600123456^PEREZ/ANA^?", "track 1 in another format"),
    ("+49 301 234 567 891", "a phone number in international notation"),
    ("0109501101530003310300125", "a GS1 element string: one run of 25 digits"),
    ("1718000000123-000000", "an HLC stamp"),
    ("411111******1111", "already masked"),
    # Random UUIDs whose digit groups, dashes read as separators, were taken for a card:
    # one in ~600, so now and then a customer id was refused as a payment card.
    ("e8f32780-1153-4616-94c0-2aa9a322d742", "a UUID (a customer id)"),
    ("38268466-6781-4000-83b6-56e40faabfaa", "a UUID"),
    ("38268466-6781-4000-83B6-56E40FAABFAA", "a UUID in capitals"),
    ("382684666781400083b656e40faabfaa", "a UUID without its dashes (a job id)"),
])
def test_what_is_not_a_payment_card(text, why):
    assert not is_payment_card(text), why
    assert find_payment_card(f"a {text} b") is None, why


def test_a_card_beside_a_uuid_is_still_found_and_masked():
    text = f"customer e8f32780-1153-4616-94c0-2aa9a322d742 card {VISA}"
    assert find_payment_card(text) == VISA
    assert redact(text) == f"customer e8f32780-1153-4616-94c0-2aa9a322d742 card {MASKED_VISA}"


def test_a_number_glued_to_its_expiry_after_a_space_is_still_found():
    assert find_payment_card(f"card {VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]} 1225") == VISA


@pytest.mark.parametrize("number, masked", [
    (VISA, MASKED_VISA), ("4111 1111 1111 1111", MASKED_VISA), ("378282246310005", "378282*****0005"),
    ("4222222222222", "422222***2222"), ("123456789", "*****6789"), ("1234567", "*******"), ("", ""),
])
def test_mask_shows_at_most_the_first_six_and_last_four(number, masked):
    assert mask(number) == masked


def test_an_error_excerpt_never_carries_a_payment_card():
    bad = json.dumps({"v": 2, "card": VISA, "also": f";{VISA}=2512101?"}).encode()
    text = excerpt(bad)
    assert VISA not in text and MASKED_VISA in text
    # A number across the 200-character cut is masked before the excerpt is cut.
    straddling = ("x" * 190 + VISA + "y" * 50).encode()
    assert VISA[:10] not in excerpt(straddling)


def test_log_lines_are_masked_also_in_urls():
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s', (
        f"GET /api/v1/customers?q={urllib.parse.quote_plus('4111 1111 1111 1111')} HTTP/1.1", 422), None)
    assert RedactingFilter().filter(record)
    assert "1111+1111" not in record.getMessage() and MASKED_VISA in record.getMessage()
    record = logging.LogRecord("edge", logging.WARNING, __file__, 1, "bad message: %s", (f"card {VISA}",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == f"bad message: card {MASKED_VISA}"


# --- every entry, end to end -------------------------------------------------------------

def payment_warning(state: dict) -> dict:
    warnings = [w for w in state["warnings"] if w["code"] == "payment_card"]
    assert warnings, state["warnings"]
    return warnings[0]


def assert_nowhere_in(state: dict, pan: str) -> None:
    text = json.dumps(state)
    assert re.search("[ -]?".join(pan), text) is None, text


@pytest.fixture
def register(shop, mqtt):
    client = mqtt(shop.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    lane_id = f"L{next(LANES)}"

    def ask(op: str, **fields) -> dict:
        return lane_request(client, "S001", lane_id, {"op": op, **fields})

    return ask


@pytest.mark.parametrize("kind", ["bare", "spaced", "track 1", "track 2"])
def test_a_payment_card_on_the_card_topic_is_refused_masked(shop, lane, kind):
    pan = pan_of("2200", 16)  # Mir: the bridge's old table did not know it
    state = lane.card(formats(pan)[kind])
    warning = payment_warning(state)
    assert warning["message"] == refusal(mask(pan))
    assert state["customer"] is None
    assert_nowhere_in(state, pan)
    notices = db_value(edge_db(shop, "S001"), "SELECT notices FROM lanes WHERE lane = ?", (lane.lane,))
    assert mask(pan) in notices and pan not in notices


def test_a_payment_card_scanned_is_refused_and_a_known_product_code_still_sells(shop, lane):
    pan = pan_of("8100", 16)  # UnionPay 81
    state = lane.scan(pan)
    assert payment_warning(state)["message"] == refusal(mask(pan))
    assert state["lines"] == [] and state["ticket"] is None
    assert_nowhere_in(state, pan)
    state = lane.scan(formats(pan)["track 2"], symbology="Code 128")
    assert payment_warning(state)
    assert is_payment_card(PRODUCT_EAN)  # Luhn-valid, starts with 4 ...
    state = lane.scan(PRODUCT_EAN)  # ... but the store sells it: a product, not a card
    assert [line["sku"] for line in state["lines"]] == ["SOAP"]


def test_a_payment_card_in_a_ticket_command_is_refused_masked(shop, lane):
    pan = pan_of("9792", 16)  # Troy
    lane.scan("8410000000011")
    for fields in ({"op": "set_customer", "card": pan}, {"op": "set_customer", "code": formats(pan)["spaced"]},
                   {"op": "add", "code": formats(pan)["track 1"]}, {"op": "add", "sku": pan}):
        state = lane.cmd(**fields)
        assert payment_warning(state)["message"] == refusal(mask(pan)), fields
        assert state["customer"] is None and [line["sku"] for line in state["lines"]] == ["MILK"]
        assert_nowhere_in(state, pan)
    assert db_query(edge_db(shop, "S001"), "SELECT 1 FROM ticket_lines WHERE barcode LIKE ?", (f"%{pan[-8:]}%",)) == []


def test_the_register_refuses_a_payment_card_as_a_card_a_search_or_a_field(shop, register):
    pan = pan_of("82", 16)  # RuPay 82
    made = register("create", id=str(uuid.uuid4()), customer={"first_name": "Pam", "last_name": "Cardholder"})
    assert made["ok"], made
    for op, fields, field in [
        ("add_card", {"ref": made["customer"]["code"], "card": pan}, "card"),
        ("add_card", {"ref": made["customer"]["code"], "card": formats(pan)["track 2"]}, "card"),
        ("search", {"q": formats(pan)["spaced"]}, "q"),
        ("create", {"customer": {"first_name": "Pat", "last_name": "Payer", "notes": f"paid with {pan}"}}, "notes"),
        ("update", {"ref": made["customer"]["code"], "customer": {"contact": formats(pan)["dashed"]}}, "contact"),
        ("history", {"ref": pan}, "ref"),
    ]:
        reply = register(op, **fields)
        assert not reply["ok"] and reply["errors"] == {field: refusal(mask(pan))}, (op, reply)
        assert pan not in json.dumps(reply)
    wait_converged(shop)
    for path in (edge_db(shop, "S001"), hq_db(shop)):
        assert db_query(path, "SELECT number FROM cards WHERE customer_id = ?", (made["customer"]["id"],)) == []
        assert db_query(path, "SELECT 1 FROM customers WHERE first_name = 'Pat' AND last_name = 'Payer'") == []


def test_hqs_add_card_command_refuses_with_one_line(shop):
    pan = pan_of("2204", 16)
    result = shop.hq_cli("customers", "add-card", shop.people["Ann"]["code"], pan, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: number {refusal(mask(pan))}"]
    assert pan not in result.stdout + result.stderr
    assert db_query(hq_db(shop), "SELECT 1 FROM cards WHERE number = ?", (pan,)) == []


@pytest.fixture(scope="module")
def hq_web(shop):
    """HQ's running page and API: (base url, a logged-in opener, an API token)."""
    shop.hq_cli("users", "add", "pci-admin", "--role", "admin", "--password-stdin", input=PASSWORD)
    token = shop.hq_cli("users", "token", "pci-admin").stdout.strip()
    base = f"http://127.0.0.1:{shop.web_ports['hq']}"
    wait_until(lambda: _status(base + "/login") == 200, 20, message="HQ's page")
    return base, login(base, "pci-admin", PASSWORD), token


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except OSError:
        return None


def api(base: str, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def post_form(opener, url: str, fields: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def test_hqs_customer_page_shows_the_refusal_next_to_the_field_and_never_the_number(shop, hq_web):
    base, opener, _ = hq_web
    pan = pan_of("37", 15)  # Amex
    status, _, body = get(opener, base + "/customers/new")
    token = CSRF_RE.search(body.decode()).group(1)
    status, page = post_form(opener, base + "/customers/new", {
        "csrf_token": token, "first_name": "Nell", "last_name": "Notes", "notes": f"card {formats(pan)['spaced']}",
        "payment_status": "valid", "status": "open"})
    assert status == 422
    assert 'id="err-notes">' in page and refusal(mask(pan)) in page
    assert re.search("[ -]?".join(pan), page) is None
    assert 'value="Nell"' in page  # nothing else typed is lost
    status, _, body = get(opener, base + "/customers/?q=" + urllib.parse.quote_plus(formats(pan)["spaced"]))
    assert status == 200 and refusal(mask(pan)) in body.decode() and pan[:10] not in body.decode()


def test_hqs_api_refuses_a_payment_card_field_or_search(shop, hq_web):
    base, _, token = hq_web
    pan = pan_of("6011", 16)
    status, body = api(base, token, "POST", "/api/v1/customers",
                       {"first_name": "Api", "last_name": "Payer", "contact": formats(pan)["track 1"]})
    assert status == 422 and body["fields"] == {"contact": refusal(mask(pan))}
    status, body = api(base, token, "GET", "/api/v1/customers?q=" + urllib.parse.quote(pan))
    assert status == 422 and body["fields"] == {"q": refusal(mask(pan))}
    assert db_query(hq_db(shop), "SELECT 1 FROM customers WHERE last_name = 'Payer' AND first_name = 'Api'") == []


def test_an_import_or_batch_row_with_a_payment_card_is_refused_masked(shop, tmp_path):
    pan = pan_of("356", 16)  # RuPay on JCB's range
    source = tmp_path / "pos.csv"
    source.write_text(f"external_id,first_name,last_name,notes\nPOS-PCI-1,Ima,Port,{formats(pan)['spaced']}\n"
                      "POS-PCI-2,Ok,Row,\n")
    result = shop.hq_cli("import", "customers", str(source), check=False)
    assert result.returncode != 0
    assert f"notes {refusal(mask(pan))}" in result.stderr and pan[:10] not in result.stdout + result.stderr
    assert db_query(hq_db(shop), "SELECT 1 FROM customers WHERE external_id LIKE 'POS-PCI-%'") == []

    source.write_text(f"first_name,last_name,notes\nBea,Batch,{pan}\nBob,Batch,\n")
    out = shop.hq_cli("batch", "new-customers", str(source), "--description", "pci").stdout
    assert "invalid" in out and refusal(mask(pan)) in out and pan not in out
    batch_id = int(re.match(r"batch (\d+)", out).group(1))
    fields = [json.loads(r[0]) for r in db_query(hq_db(shop), "SELECT fields FROM batch_rows WHERE batch_id = ?",
                                                  (batch_id,))]
    assert fields[0]["notes"] == mask(pan)  # kept, masked, and still refused until fixed
    refused = shop.hq_cli("batch", "execute", str(batch_id), check=False)
    assert refused.returncode != 0 and "row 1 is invalid" in refused.stderr
    assert "1  ok" in shop.hq_cli("batch", "fix", str(batch_id), "1", "notes=").stdout
    source.unlink()


# --- never anywhere: generated numbers of every network, every format, every entry ---------

def _network_pans():
    def build(network, body):
        prefix, length = network[1], network[2]
        return luhn_complete((prefix + body)[: length - 1])
    return st.builds(build, st.sampled_from(NETWORKS), st.text("0123456789", min_size=20, max_size=20))


class Capture:
    """Everything published under lanehub/# on a broker."""

    def __init__(self, client: MqttClient):
        self.messages: list[tuple[str, bytes]] = []
        client.subscribe("lanehub/#", lambda m: self.messages.append((m.topic, bytes(m.payload))))


# What the test itself publishes (the numbers go in there on purpose): every other
# topic is lanehub's own output.
INPUT_LEAVES = ("/scan", "/card", "/ticket/cmd", "/customer/req")


def files_holding(root: Path, pans: list[str], skip: tuple[Path, ...]) -> list[tuple[str, str]]:
    patterns = [(pan, re.compile("[ -]?".join(pan).encode())) for pan in pans]
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or any(part in path.parents for part in skip):
            continue
        data = path.read_bytes()
        found += [(str(path), pan) for pan, pattern in patterns if pattern.search(data)]
    return found


def checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def test_no_generated_payment_card_is_ever_on_a_broker_or_in_a_file(shop, mqtt, hq_web):
    base, _, token = hq_web
    store = Capture(mqtt(shop.store_brokers["S001"].port))
    # A user of its own with HQ's rights: logging in as "hq" would take HQ's own session
    # (the HQ broker uses the user name as the client id).
    hq_client = hq_operator(shop, mqtt)
    hq_capture = Capture(hq_client)
    client = mqtt(shop.store_brokers["S001"].port)
    client.subscribe("test/#", lambda m: None)
    lane_id = f"L{next(LANES)}"
    till = Lane(client, "S001", lane_id)
    customer = lane_request(client, "S001", lane_id, {"op": "create", "id": str(uuid.uuid4()),
                                                      "customer": {"first_name": "Gen", "last_name": "Erated"}})
    seen: list[str] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(pan=_network_pans(), kind=st.sampled_from(["bare", "spaced", "track 1", "track 2"]))
    def every_entry(pan, kind):
        seen.append(pan)
        text = formats(pan)[kind]
        masked = refusal(mask(pan))
        assert payment_warning(till.card(text))["message"] == masked
        assert payment_warning(till.scan(text))["message"] == masked
        assert payment_warning(till.cmd("set_customer", card=text))["message"] == masked
        assert payment_warning(till.cmd("add", code=text))["message"] == masked
        for op, fields in (("add_card", {"ref": customer["customer"]["code"], "card": text}), ("search", {"q": text}),
                           ("create", {"customer": {"first_name": "N", "last_name": "M", "notes": text}})):
            reply = lane_request(client, "S001", lane_id, {"op": op, **fields})
            assert not reply["ok"] and masked in reply["errors"].values(), (op, reply)
        assert api(base, token, "POST", "/api/v1/customers", {"first_name": "A", "last_name": "B", "notes": text})[0] == 422
        assert api(base, token, "GET", "/api/v1/customers?q=" + urllib.parse.quote_plus(text))[0] == 422

    every_entry()  # (the CLI entry has its own test: it spawns a process per call)
    wait_converged(shop)
    assert seen
    for capture in (store, hq_capture):
        for topic, payload in capture.messages:
            if topic.endswith(INPUT_LEAVES):
                continue
            for pan in seen:
                assert re.search("[ -]?".join(pan).encode(), payload) is None, (topic, payload[:300])
    assert store.messages and hq_capture.messages  # the capture did see lanehub's traffic
    for path in [hq_db(shop), *(edge_db(shop, s) for s in shop.stores)]:
        checkpoint(path)
    # The store brokers' own files hold what this test published to them (the persistent
    # session queues the inputs for the edge, D23): they are the test's, not lanehub's.
    skip = tuple(shop.workdir / f"{s}-broker" for s in shop.stores)
    assert files_holding(shop.workdir, seen, skip) == []


# --- the purge of what was kept before ----------------------------------------------------

def _old_edge(path: Path) -> sqlite3.Connection:
    """An edge database as the release before this one left it."""
    from edge.db import edge_migrations

    conn = connect(path)
    db = sqlite_utils.Database(conn)
    replica_migrations.apply(db)
    edge_migrations.apply(db, stop_before="m010_purge_payment_cards")
    return conn


def _old_hq(path: Path) -> sqlite3.Connection:
    from hq.migrations import hq_migrations

    conn = connect(path)
    db = sqlite_utils.Database(conn)
    replica_migrations.apply(db)
    hq_migrations.apply(db, stop_before="m006_purge_payment_cards")
    return conn


def _card_change(origin: str, key: str, number: str, customer: str, hlc: str) -> Change:
    return Change(new_id(), "card", key, origin, hlc, "old", {"number": number, "customer_id": customer,
                                                              "kind": "customer", "active": True})


def _file_holds(path: Path, pan: str) -> bool:
    checkpoint(path)
    return any(pan.encode() in p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_the_upgrade_purges_payment_cards_a_store_kept(tmp_path):
    from edge.db import EdgeDatabase

    path = tmp_path / "S001.db"
    conn = _old_edge(path)
    customer, acked, unsent, loyalty = new_id(), new_id(), new_id(), new_id()
    replica = Replica(conn)
    pan_acked, pan_unsent = pan_of("2200", 16), pan_of("4", 16, "987")
    for key, number in ((acked, pan_acked), (unsent, pan_unsent), (loyalty, "LOY-0001")):
        replica.apply(_card_change("S001", key, number, customer, "1718000000000-000000"))
    unsent_change = _card_change("S001", unsent, pan_unsent, customer, "1718000000000-000000")
    conn.execute("INSERT INTO outbox (id, change, created_at) VALUES (?, ?, 0)", (unsent_change.id, unsent_change.to_json()))
    conn.execute("INSERT INTO lanes (lane, last_n, notices) VALUES ('L1', 0, ?)",
                 (json.dumps([{"code": "unknown_card", "message": f"card {pan_acked} belongs to no customer"}]),))
    conn.execute("INSERT INTO rejections (change_id, entity, key, reason, change, rejected_at) VALUES (?, 'card', ?, ?, ?, '')",
                 (new_id(), acked, f"card {pan_acked} already belongs to another customer", unsent_change.to_json()))
    conn.close()
    assert _file_holds(path, pan_acked) and _file_holds(path, pan_unsent)

    db = EdgeDatabase(path, "S001")
    cards = {r["id"]: dict(r) for r in db.conn.execute("SELECT id, number, active FROM cards")}
    assert cards[acked] == {"id": acked, "number": mask(pan_acked), "active": 0}  # HQ knows it: masked, deactivated
    assert unsent not in cards and db.pending_up() == 0  # never reached HQ: gone
    assert cards[loyalty]["number"] == "LOY-0001" and cards[loyalty]["active"] == 1
    assert json.loads(db.conn.execute("SELECT notices FROM lanes").fetchone()[0])[0]["message"] == \
        f"card {mask(pan_acked)} belongs to no customer"
    db.close()
    assert not _file_holds(path, pan_acked) and not _file_holds(path, pan_unsent)


def test_the_upgrade_erases_payment_cards_at_hq_so_no_replica_gets_them_back(tmp_path):
    from edge.db import EdgeDatabase
    from hq.db import HQDatabase

    path = tmp_path / "hq.db"
    conn = _old_hq(path)
    customer, key, loyalty = new_id(), new_id(), new_id()
    pan = pan_of("62", 19)
    old_hlc = "1718000000000-000000"
    replica = Replica(conn)
    for card, number in ((key, pan), (loyalty, "LOY-0002")):
        change = _card_change("hq", card, number, customer, old_hlc)
        replica.apply(change)
        conn.execute("INSERT INTO changes (id, entity, key, origin, hlc, by, fields, received_at) "
                     "VALUES (?, 'card', ?, 'hq', ?, 'old', ?, 0)", (change.id, card, old_hlc, json.dumps(change.fields)))
    conn.close()
    # A store that replicated the card before the upgrade.
    store_path = tmp_path / "S001.db"
    store_conn = _old_edge(store_path)
    Replica(store_conn).apply(_card_change("hq", key, pan, customer, old_hlc))
    store_conn.close()

    hq = HQDatabase(path, CodeFormat())
    card = hq.replica.get("card", key)
    assert (card["number"], card["active"]) == (mask(pan), False)
    assert hq.replica.get("card", loyalty)["number"] == "LOY-0002"
    erasure = [c for c in hq.changes_since(1, 100) if c.by == "hq:payment-card-purge"]
    assert [(c.key, c.fields) for c in erasure] == [(key, {"number": mask(pan), "active": False})]
    assert all(pan not in json.dumps(c.fields) for c in hq.changes_since(1, 100))

    # A new box replays the whole log; the store that had the number applies the erasure.
    fresh = EdgeDatabase(tmp_path / "S002.db", "S002")
    fresh.apply_down(hq.changes_since(1, 100))
    store = EdgeDatabase(store_path, "S001")
    store.apply_down(hq.changes_since(1, 100))
    for edge in (fresh, store):
        card = edge.replica.get("card", key)
        assert (card["number"], card["active"]) == (mask(pan), False)
        edge.close()
    hq.close()
    for db_path in (path, tmp_path / "S002.db", store_path):
        assert not _file_holds(db_path, pan), db_path


def test_hq_refuses_a_stores_change_that_carries_a_payment_card_and_keeps_it_masked(tmp_path):
    # A store that is not upgraded yet (or a hostile one) sends a card change and a
    # customer edit with a PAN: HQ's own check refuses both, with the masked form.
    from hq.db import HQDatabase

    db = HQDatabase(tmp_path / "hq.db", CodeFormat("CUST-", 5))
    try:
        db.add_store("S001")
        customer = db.create_customer({"first_name": "Ann", "last_name": "Shopper"}, "t")
        stamp = db.clock.now()
        changes = [
            {"id": new_id(), "entity": "card", "key": str(uuid.uuid4()), "origin": "S001", "hlc": stamp, "by": "t",
             "fields": {"number": VISA, "customer_id": customer["id"], "kind": "customer", "active": True}},
            {"id": new_id(), "entity": "customer", "key": customer["id"], "origin": "S001", "hlc": stamp, "by": "t",
             "fields": {"notes": f"paid with {VISA}"}},
        ]
        outcomes = db.apply_store_changes("S001", changes)
        assert [o.ok for o in outcomes] == [False, False], outcomes
        assert all(MASKED_VISA in o.reason and VISA not in o.reason for o in outcomes)
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert VISA.encode() not in (tmp_path / "hq.db").read_bytes()
    finally:
        db.close()


def test_the_cli_refuses_a_payment_card_in_a_customer_field(make_chain):
    chain = make_chain(stores=("S001",))
    added = chain.hq_cli("customers", "add", "--first-name", "Ann", "--last-name", "Shopper", "--notes", f"card {VISA}",
                         check=False)
    assert added.returncode != 0 and MASKED_VISA in added.stderr and VISA not in added.stderr + added.stdout
    assert not db_query(hq_db(chain), "SELECT 1 FROM customers WHERE first_name = 'Ann'")


def test_the_upgrade_masks_a_payment_card_typed_into_a_customers_text_field(tmp_path):
    from edge.db import EdgeDatabase
    from hq.db import HQDatabase

    path = tmp_path / "hq.db"
    conn = _old_hq(path)
    key, old_hlc = new_id(), "1718000000000-000000"
    change = Change(new_id(), "customer", key, "hq", old_hlc, "old",
                    {"code": "CUST-00001", "first_name": "Ann", "last_name": "Notes", "notes": f"paid with {VISA} once",
                     "active": True})
    Replica(conn).apply(change)
    conn.execute("INSERT INTO changes (id, entity, key, origin, hlc, by, fields, received_at) "
                 "VALUES (?, 'customer', ?, 'hq', ?, 'old', ?, 0)", (change.id, key, old_hlc, json.dumps(change.fields)))
    conn.close()

    hq = HQDatabase(path, CodeFormat())
    assert hq.replica.get("customer", key)["notes"] == f"paid with {MASKED_VISA} once"
    assert all(VISA not in json.dumps(c.fields) for c in hq.changes_since(1, 100))
    fresh = EdgeDatabase(tmp_path / "S001.db", "S001")  # a store replays the log: the masked text
    fresh.apply_down(hq.changes_since(1, 100))
    assert fresh.replica.get("customer", key)["notes"] == f"paid with {MASKED_VISA} once"
    fresh.close()
    hq.close()
    assert not _file_holds(path, VISA) and not _file_holds(tmp_path / "S001.db", VISA)
