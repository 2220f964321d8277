"""Codes as stores scan them (lanehub.domain.barcodes): AIM identifiers, GS1 element strings,
scale labels with weight or price, check digits; then the same codes through a
real store: a scanner bridge, the store broker, the edge's lane and its pricing."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal

import pytest
from helpers import wait_converged
from shop import LANES, PRODUCTS_CSV, Lane

from devices.readers.keymap import strip_aim
from edge.config import SCHEMA as EDGE_SCHEMA
from lanehub.domain.barcodes import (
    AIS,
    GS,
    BarcodeError,
    ScaleLayout,
    gtin_check_digit,
    gtin_lookup_keys,
    parse_layouts,
    parse_scan,
    price_check_digit,
    split_aim,
)
from lanehub.protocol import topics
from lanehub.runtime.config import ConfigError, load

LAYOUTS = parse_layouts(["20PPPPPWWWWWC", "22PPPPP$$$$$C", "23PPPPPV$$$$C", "24PPPPV$$$$$C", "209PPPPWWWWWC"])


def ean(body: str) -> str:
    return body + str(gtin_check_digit(body))


# --- check digits ------------------------------------------------------------------------

@pytest.mark.parametrize("body, digit", [
    ("950110153000", 3), ("400638133393", 1), ("03600024145", 7), ("9638507", 4), ("0950110153000", 3),
    ("201234500000", 1),
])
def test_gtin_check_digit(body, digit):
    assert gtin_check_digit(body) == digit


@pytest.mark.parametrize("digits, verifier", [("2875", 9), ("14685", 6), ("0000", 0), ("00000", 0)])
def test_price_check_digit_is_gs1s(digits, verifier):
    assert price_check_digit(digits) == verifier


def test_a_bad_check_digit_is_refused_wherever_one_is_checked():
    for code, symbology in [("9501101530004", "EAN-13 / UPC-A"), ("]E09501101530004", ""), ("2012345012508", ""),
                            ("]C10109501101530004", ""), ("]E496385075", "")]:
        with pytest.raises(BarcodeError, match="bad check digit"):
            parse_scan(code, symbology, LAYOUTS)


def test_a_plain_code_is_looked_up_as_scanned_without_a_check():
    # In-store codes need not be GTINs: no symbology, no layout -> exactly as scanned.
    assert parse_scan("8410000000011").lookup == ("8410000000011",)
    assert parse_scan("2012345012508").lookup == ("2012345012508",)  # no layouts configured
    assert parse_scan("]C0ABC-123") == parse_scan("ABC-123", "Code 128")
    assert parse_scan("]C0ABC-123").lookup == ("ABC-123",)


# --- AIM identifiers -----------------------------------------------------------------------

@pytest.mark.parametrize("scan", ["]E08410000000011", "]C1010841000000001110AB1\x1d21X", "]Q3010841", "]X9unknown",
                                  "8410000000011", "]E", ""])
def test_keymap_and_core_share_one_aim_table(scan):
    assert strip_aim(scan) == split_aim(scan)


@pytest.mark.parametrize("code, symbology, name, lookup", [
    ("]E04006381333931", "", "EAN-13 / UPC-A", ("4006381333931", "04006381333931")),
    ("4006381333931", "EAN-13 / UPC-A", "EAN-13 / UPC-A", ("4006381333931", "04006381333931")),
    ("]E44006381333931", "Code 39", "EAN-8", None),  # the prefix wins: an EAN-8 of 13 digits is refused
    ("]E496385074", "", "EAN-8", ("96385074", "00000096385074", "0000096385074", "000096385074")),
    ("]E0036000241457", "", "EAN-13 / UPC-A", ("036000241457", "00036000241457", "0036000241457")),
    ("]E3400638133393112", "", "EAN-13 / UPC-A + add-on", ("4006381333931", "04006381333931")),
])
def test_aim_prefixes_are_always_stripped_and_name_the_symbology(code, symbology, name, lookup):
    if lookup is None:
        with pytest.raises(BarcodeError, match="not an EAN-8 code"):
            parse_scan(code, symbology)
        return
    scanned = parse_scan(code, symbology)
    assert (scanned.symbology, scanned.lookup) == (name, lookup)
    assert not scanned.code.startswith("]")


# --- scale labels --------------------------------------------------------------------------

@pytest.mark.parametrize("code, weight, price, lookup, layout", [
    (ean("201234501250"), Decimal("1.250"), None, ("2012345000001", "12345"), "20PPPPPWWWWWC"),
    (ean("200000700005"), Decimal("0.005"), None, (ean("200000700000"), "00007"), "20PPPPPWWWWWC"),
    (ean("225432100250"), None, Decimal("2.50"), ("2254321000005", "54321"), "22PPPPP$$$$$C"),
    (ean("225432199999"), None, Decimal("999.99"), ("2254321000005", "54321"), "22PPPPP$$$$$C"),
    (ean("231234592875"), None, Decimal("28.75"), (ean("231234500000"), "12345"), "23PPPPPV$$$$C"),
    (ean("241234614685"), None, Decimal("146.85"), (ean("241234000000"), "1234"), "24PPPPV$$$$$C"),
    (ean("209987601250"), Decimal("1.250"), None, (ean("209987600000"), "9876"), "209PPPPWWWWWC"),  # longest prefix
])
def test_scale_labels_per_layout(code, weight, price, lookup, layout):
    scanned = parse_scan(code, "", LAYOUTS)
    assert (scanned.weight, scanned.price, scanned.lookup, scanned.layout) == (weight, price, lookup, layout)
    assert scanned.measured and scanned.code == code
    assert parse_scan("]E0" + code, "", LAYOUTS) == parse_scan(code, "EAN-13 / UPC-A", LAYOUTS)


@pytest.mark.parametrize("code, problem", [
    (ean("231234582875"), "bad price check digit"),  # verifier 8, not 9
    (ean("241234714685"), "bad price check digit"),
    (ean("201234500000"), "weight is 0"),
    (ean("225432100000"), "price is 0"),
])
def test_bad_scale_labels_are_refused_with_the_reason(code, problem):
    with pytest.raises(BarcodeError, match=problem):
        parse_scan(code, "", LAYOUTS)


def test_a_label_prefix_only_applies_to_ean_codes():
    assert parse_scan(ean("201234501250"), "Code 128", LAYOUTS).lookup == (ean("201234501250"),)
    assert parse_scan(ean("251234501250"), "", LAYOUTS).weight is None  # no layout for 25


@pytest.mark.parametrize("picture, problem", [
    ("20PPPPPWWWWC", "12 characters, not 13"),
    ("PPPPPPWWWWWWC", "must start with its prefix"),
    ("12PPPPPWWWWWC", "must start with its prefix"),
    ("2PPPPPPWWWWWC", "must start with its prefix"),
    ("20PPPPPXXXXXC", "unknown character 'X'"),
    ("20PPPPPWWWWCW", "check digit C comes last"),
    ("20PPPPPWWWCCC", "check digit C comes last"),
    ("20PPPPP$$WWWC", "weight digits (W) or price digits ($): one of them"),
    ("20PPPPPPPPPPC", "weight digits (W) or price digits ($): one of them"),
    ("20WWWWWWWWWWC", "no item code"),
    ("20PPWWWWWPPPC", "P digits must be together"),
    ("20PPPPPPV$$$C", "over 4 or 5 W/$ digits"),
])
def test_bad_layouts_say_what_is_wrong(picture, problem):
    with pytest.raises(BarcodeError, match=re.escape(problem)):
        ScaleLayout.parse(picture)


def test_two_layouts_for_one_prefix_are_refused():
    with pytest.raises(BarcodeError, match="two layouts for prefix 20"):
        parse_layouts(["20PPPPPWWWWWC", "20PPPPP$$$$$C"])


# --- GS1 element strings ----------------------------------------------------------------------

GTIN = "0109501101530003"  # AI 01 + GTIN-14 09501101530003 (GS1's example), EAN-13 9501101530003


@pytest.mark.parametrize("code, expected", [
    ("]C1" + GTIN, {"lookup": ("09501101530003", "9501101530003")}),
    ("]C1" + GTIN + "3103001250", {"weight": Decimal("1.250")}),
    ("]C1" + GTIN + "3102001250", {"weight": Decimal("12.50")}),
    ("]C1" + GTIN + "3100000002", {"weight": Decimal("2")}),
    ("]C1" + GTIN + "3202002205", {"weight": Decimal("10.002")}),  # 22.05 lb in kg, to the gram
    ("]C1" + GTIN + "3922000599", {"price": Decimal("5.99"), "currency": ""}),
    ("]C1" + GTIN + "3932978000599", {"price": Decimal("5.99"), "currency": "EUR"}),
    ("]C1" + GTIN + "3931840123", {"price": Decimal("12.3"), "currency": "USD"}),
    ("]C1" + GTIN + "10LOT-42" + GS + "3103000500", {"batch": "LOT-42", "weight": Decimal("0.500")}),
    ("]C1" + GTIN + "17260315" + "21SN1", {"expiry": date(2026, 3, 15), "serial": "SN1"}),
    ("]C1" + GTIN + "17260200", {"expiry": date(2026, 2, 28)}),  # day 00: the month's last day
    ("]C1" + GTIN + "3012", {"count": 12}),
    ("]C10209501101530003" + "376" + GS + "00095011015300000003",
     {"count": 6, "lookup": ("09501101530003", "9501101530003")}),
    ("]C1" + GS + GTIN + "3103001250", {"weight": Decimal("1.250")}),  # a leading FNC1
    ("]C1" + GTIN + GS + "3103001250", {"weight": Decimal("1.250")}),  # FNC1 after a fixed-length AI
    ("]C1" + GTIN + "11250101" + "13250102" + "15250103" + "16250104" + "2001" + "22CPV" + GS + "240X" + GS
     + "241Y" + GS + "250Z" + GS + "400PO" + GS + "4109501101530010" + "420" + "28001" + GS + "422724"
     + "70032601011200" + "8005000120" + "90INT" + GS + "91X", {"lookup": ("09501101530003", "9501101530003")}),
    ("]e0" + GTIN + "3103001250", {"symbology": "GS1 DataBar", "weight": Decimal("1.250")}),
    ("]d2" + GTIN + "17260315", {"symbology": "GS1 DataMatrix", "expiry": date(2026, 3, 15)}),
    ("]Q3" + GTIN + "3922000599", {"symbology": "QR Code", "price": Decimal("5.99")}),
    ("(01)09501101530003(3103)001250(10)AB", {"weight": Decimal("1.250"), "batch": "AB", "symbology": ""}),
])
def test_gs1_application_identifiers(code, expected):
    scanned = parse_scan(code)
    assert {key: getattr(scanned, key) for key in expected} == expected
    _, data = split_aim(code)
    by_name = parse_scan(data, scanned.symbology) if scanned.symbology not in ("", "QR Code") else scanned
    assert by_name == scanned  # the symbology a bridge reports reads the same as the prefix


@pytest.mark.parametrize("code, problem", [
    ("]C1" + GTIN + "99", r"AI 99 \(INTERNAL\): no data"),
    ("]C1" + GTIN + "7001123", "unknown application identifier at '7001'"),
    ("]C1" + GTIN + "2312", "unknown application identifier at '2312'"),
    ("]C10109501101530004", r"AI 01 \(GTIN\): bad check digit"),
    ("]C1010950110153", r"AI 01 \(GTIN\): needs 14 characters"),
    ("]C1" + GTIN + "3103001A50", "AI 3103 .* must be digits"),
    ("]C1" + GTIN + "3107001250", "at most 6 decimals"),
    ("]C1" + GTIN + "10" + "X" * 21, "more than 20 characters .*FNC1"),
    ("]C1" + GTIN + "17261301", "AI 17: '261301' is not a date"),
    ("]C1" + GTIN + "3103001250" + "3102001250", "AI 310n appears twice"),
    ("]C1" + GTIN + "3922000599" + GS + "3932978000599", "two prices"),
    ("]C1" + GTIN + "3103000000", "weight is 0"),
    ("]C1" + GTIN + "3932978", "a 3-digit currency, then the price"),
    ("]C110LOT", "without a GTIN"),
    ("]C1", "an empty scan"),
    ("(01)0950110153000(3103)001250", r"AI 01 \(GTIN\): needs 14 characters"),
    ("(01)09501101530003(9999)1", "unknown application identifier \\(9999\\)"),
])
def test_bad_gs1_codes_are_refused_with_the_reason(code, problem):
    with pytest.raises(BarcodeError, match=problem):
        parse_scan(code)


def test_the_ai_table_is_prefix_free():
    assert [(a, b) for a in AIS for b in AIS if a != b and b.startswith(a)] == []


def test_gtin_lookup_keys():
    assert gtin_lookup_keys("09501101530003") == ("09501101530003", "9501101530003")
    assert gtin_lookup_keys("00036000241457") == ("00036000241457", "0036000241457", "036000241457")
    assert gtin_lookup_keys("19501101530000") == ("19501101530000",)


# --- configuration -----------------------------------------------------------------------------

def test_the_layouts_come_from_edge_toml_and_default_to_none(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[store]\nid = "S001"\n')
    assert load(path, EDGE_SCHEMA, environ={})["store"]["variable_measure"] == []
    path.write_text('[store]\nid = "S001"\nvariable_measure = ["20PPPPPWWWWWC", "22PPPPP$$$$$C"]\n')
    assert load(path, EDGE_SCHEMA, environ={})["store"]["variable_measure"] == ["20PPPPPWWWWWC", "22PPPPP$$$$$C"]


@pytest.mark.parametrize("value, problem", [
    ('["20PPPPWWWWWC"]', "has 12 characters, not 13"),
    ('["20PPPPP$$$$$C", "20PPPPPWWWWWC"]', "two layouts for prefix 20"),
    ('"20PPPPPWWWWWC"', "expected a list of strings"),
])
def test_a_bad_layout_stops_the_edge_with_one_line_naming_file_and_key(tmp_path, value, problem):
    path = tmp_path / "edge.toml"
    path.write_text(f'[store]\nid = "S001"\nvariable_measure = {value}\n')
    with pytest.raises(ConfigError) as info:
        load(path, EDGE_SCHEMA, environ={})
    assert f"{path}: [store] variable_measure: " in str(info.value) and problem in str(info.value)
    result = subprocess.run([sys.executable, "-m", "lanehub.cli.main", "edge", "run", "-c", str(path)],
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "[store] variable_measure" in lines[0] and problem in lines[0]


# --- through a real store --------------------------------------------------------------------------

# The shop fixture (tests/shop.py) reads these: S001 prices scale labels, S002 does not.
SHOP_STORE_SETTINGS = {"S001": {"variable_measure": ["20PPPPPWWWWWC", "22PPPPP$$$$$C"]}}
SHOP_PRODUCTS_CSV = PRODUCTS_CSV + """COFFEE,Ground coffee,Roasters,250g,4.50,10,yes,4006381333931
SALMON,Smoked salmon,Fjord,kg,19.90,10,yes,9501101530003
APPLES,Apples,Orchard,kg,3.99,4,yes,2012345000001
CHEESE,Manchego,Quesos,kg,12.50,4,yes,2254321000005
"""
WEIGHT_LABEL = ean("201234501250")  # APPLES, 1.250 kg
PRICE_LABEL = ean("225432100250")  # CHEESE, 2.50


@pytest.fixture(scope="module")
def vip_labels(shop):
    """Ann's VIP rate takes 10 % off apples and cheese too."""
    shop.hq_cli("rates", "line", "VIP", "APPLES", "--discount", "10")
    shop.hq_cli("rates", "line", "VIP", "CHEESE", "--discount", "10")
    wait_converged(shop)
    return shop


def line_view(state: dict) -> list[tuple]:
    return [(l["sku"], l["qty"], l["unit_price"], l["amount"], l["price_source"]) for l in state["lines"]]


def test_an_aim_prefixed_ean13_from_a_scanner_without_aim_in_its_profile_is_priced(shop, lane, mqtt):
    from devices.link import DeviceLink
    from devices.profiles import PROFILES_DIR, load_profile
    from devices.readers.bridge import ReaderBridge
    from lanehub.runtime.mqtt import BrokerSettings

    profile = load_profile(PROFILES_DIR / "datalogic-magellan-serial.toml")
    assert profile.aim is False  # the scanner was reprogrammed to send AIM ids; its profile says it does not
    port = shop.store_brokers["S001"].port
    scans: queue.Queue = queue.Queue()
    mqtt(port).subscribe(topics.scan("S001", lane.lane), lambda m: scans.put(json.loads(m.payload)))
    link = DeviceLink(BrokerSettings(port=port), "S001", "SC7", lane.lane, "scanner")
    bridge = ReaderBridge(link, profile, source=None, retry=1.0)
    link.start()
    try:
        assert link.client.wait_connected(10)
        time.sleep(0.3)  # the test's own subscription is in place
        bridge.handle("]E04006381333931\r")
        scan = scans.get(timeout=10)
        assert (scan["code"], scan["symbology"], scan["device"]) == ("4006381333931", "EAN-13 / UPC-A", "SC7")
        state = lane.state_for(scan["id"])
    finally:
        link.stop()
    assert state["warnings"] == []
    assert line_view(state) == [("COFFEE", "1", "4.50", "4.50", "retail")]
    assert state["lines"][0]["barcode"] == "4006381333931" and state["total"] == "4.50"


def test_a_gs1_128_with_gtin_and_net_weight_is_a_weighed_line(lane):
    state = lane.scan("]C1" + GTIN + "3103001250")
    assert state["warnings"] == []
    assert line_view(state) == [("SALMON", "1.250", "19.90", "24.88", "retail")]  # 19.90 x 1.25 = 24.875
    state = lane.scan(GTIN + "10LOT7" + GS + "3103000500", symbology="GS1-128")  # as a bridge reports it
    assert line_view(state)[1] == ("SALMON", "0.500", "19.90", "9.95", "retail")
    assert state["lines"][1]["barcode"] == GTIN + "10LOT7" + GS + "3103000500"
    assert state["total"] == "34.83"


def test_a_weight_label_is_priced_by_weight_and_repriced_for_the_customer(vip_labels, lane):
    state = lane.scan(WEIGHT_LABEL)
    assert state["warnings"] == []
    assert line_view(state) == [("APPLES", "1.250", "3.99", "4.99", "retail")]  # 3.99 x 1.25 = 4.9875
    assert state["lines"][0]["barcode"] == WEIGHT_LABEL and state["total"] == "4.99"
    state = lane.card("CARD-0001")  # Ann, VIP: apples -10 %
    assert line_view(state) == [("APPLES", "1.250", "3.59", "4.49", "rate:VIP")]  # 3.59 x 1.25 = 4.4875
    assert state["total"] == "4.49"


def test_a_price_label_keeps_its_price_when_the_customer_comes_later(vip_labels, lane):
    state = lane.scan(PRICE_LABEL)
    assert state["warnings"] == []
    # qty: the weight the scale priced at 12.50 a kg; amount: the label's price.
    assert line_view(state) == [("CHEESE", "0.200", "12.50", "2.50", "label")]
    assert state["lines"][0]["barcode"] == PRICE_LABEL
    state = lane.scan("8410000000011")
    assert state["total"] == "3.70"
    state = lane.card("CARD-0001")  # Ann, VIP: cheese -10 % does not touch a labelled price; milk -10 % does
    assert line_view(state) == [("CHEESE", "0.200", "12.50", "2.50", "label"),
                                ("MILK", "1", "1.08", "1.08", "rate:VIP")]
    assert state["total"] == "3.58"


def test_labels_reach_the_receipt_with_weight_and_amount(vip_labels, lane):
    lane.scan(WEIGHT_LABEL)
    lane.scan(PRICE_LABEL)
    state = lane.cmd("close")
    assert state["status"] == "closed" and state["total"] == "7.49"
    receipt = lane.jobs.get(timeout=10)["receipt"]
    assert [(l["sku"], l["qty"], l["unit_price"], l["amount"]) for l in receipt["lines"]] == [
        ("APPLES", "1.250", "3.99", "4.99"), ("CHEESE", "0.200", "12.50", "2.50")]
    assert receipt["total"] == "7.49"


def test_a_ticket_command_add_reads_its_code_the_same_way(lane):
    state = lane.cmd("add", code=WEIGHT_LABEL)
    assert line_view(state) == [("APPLES", "1.250", "3.99", "4.99", "retail")]
    state = lane.cmd("add", code="(01)09501101530003(3103)000500")  # typed at the till
    assert line_view(state)[1] == ("SALMON", "0.500", "19.90", "9.95", "retail")
    state = lane.cmd("add", code=PRICE_LABEL, qty=2)
    assert [w["code"] for w in state["warnings"]] == ["label_qty"] and len(state["lines"]) == 2
    assert state["total"] == "14.94"


def test_bad_codes_are_refused_with_the_reason_and_change_nothing(lane):
    lane.scan(WEIGHT_LABEL)
    for code, reason in [(WEIGHT_LABEL[:-1] + "8", "bad check digit"),
                         ("]C1" + GTIN + "7001123", "unknown application identifier"),
                         ("]C1" + GTIN + "3932840000599", "its price is in USD, this store sells in EUR"),
                         ("]E09501101530004", "bad check digit")]:
        state = lane.scan(code)
        assert [w["code"] for w in state["warnings"]] == ["bad_code"], code
        assert reason in state["warnings"][0]["message"] and "\x1d" not in state["warnings"][0]["message"]
        assert line_view(state) == [("APPLES", "1.250", "3.99", "4.99", "retail")] and state["total"] == "4.99"
    state = lane.scan(ean("201111101250"))  # a valid label for an item the catalogue does not have
    assert state["warnings"] == [{"code": "unknown_code", "message": f"no product with code {ean('201111101250')} "
                                                                      f"(looked up as {ean('201111100000')}, 11111)"}]


def test_a_store_without_layouts_reads_a_prefix_20_code_as_it_is(shop, mqtt):
    other = Lane(mqtt(shop.store_brokers["S002"].port), "S002", f"L{next(LANES)}")
    state = other.scan(WEIGHT_LABEL)
    assert state["warnings"] == [{"code": "unknown_code", "message": f"no product with code {WEIGHT_LABEL}"}]
    state = other.scan("2012345000001")  # the PLU's own code: a fixed-price item there
    assert line_view(state) == [("APPLES", "1", "3.99", "3.99", "retail")]
