"""docs/protocol.md, branch by branch: one table, one pure function."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal as D

import pytest

from lanehub.domain.pricing import PricingCustomer, Product, Rate, RateLine, SpecificPrice, unit_price

DAY = date(2026, 6, 15)
MILK = Product(id="p-milk", sku="MILK", description="Milk 1L", retail_price=D("10.00"))
ALICE = PricingCustomer(id="c-alice", rate="VIP")
BOB = PricingCustomer(id="c-bob", rate="")


@dataclass
class View:
    rates: dict = field(default_factory=dict)
    lines: dict = field(default_factory=dict)
    specifics: list = field(default_factory=list)

    def rate(self, code):
        return self.rates.get(code)

    def rate_line(self, rate_id, product_id):
        return self.lines.get((rate_id, product_id))

    def specific_prices(self, product_id):
        return list(self.specifics)


def vip(start=date(2026, 1, 1), end=None, status="active"):
    return {"VIP": Rate(id="r-vip", code="VIP", start=start, end=end, status=status)}


def line(price, pct="0"):
    return {("r-vip", "p-milk"): RateLine(price=D(price), discount_pct=D(pct))}


CASES = [
    # (name, customer, store, view, unit, source)
    ("no customer, nothing else: retail", None, "S001", View(), "10.00", "retail"),
    ("customer without rate: retail", BOB, "S001", View(), "10.00", "retail"),
    ("rate line cheaper than retail", ALICE, "S001", View(vip(), line("8.00")), "8.00", "rate:VIP"),
    ("rate line dearer than retail: retail wins", ALICE, "S001", View(vip(), line("12.00")), "10.00", "retail"),
    ("rate line equal to retail: the rate is the source", ALICE, "S001", View(vip(), line("10.00")), "10.00", "rate:VIP"),
    ("rate line price 0 with a discount: retail minus discount", ALICE, "S001", View(vip(), line("0", "15")), "8.50", "rate:VIP"),
    ("rate line price and discount", ALICE, "S001", View(vip(), line("9.00", "10")), "8.10", "rate:VIP"),
    ("rate line half-up to cents", ALICE, "S001", View(vip(), line("0.99", "50")), "0.50", "rate:VIP"),
    ("rate line price 0 without discount: retail", ALICE, "S001", View(vip(), line("0", "0")), "10.00", "rate:VIP"),
    ("rate not yet started", ALICE, "S001", View(vip(start=date(2026, 7, 1)), line("8.00")), "10.00", "retail"),
    ("rate starts today", ALICE, "S001", View(vip(start=DAY), line("8.00")), "8.00", "rate:VIP"),
    ("rate expired", ALICE, "S001", View(vip(end=date(2026, 6, 14)), line("8.00")), "10.00", "retail"),
    ("rate ends today", ALICE, "S001", View(vip(end=DAY), line("8.00")), "8.00", "rate:VIP"),
    ("rate disabled", ALICE, "S001", View(vip(status="disabled"), line("8.00")), "10.00", "retail"),
    ("customer's rate does not exist", ALICE, "S001", View({}, line("8.00")), "10.00", "retail"),
    ("rate without a line falls through to a specific price", ALICE, "S001",
     View(vip(), {}, [SpecificPrice(D("7.00"))]), "7.00", "specific"),
    ("rate line wins over a cheaper specific price", ALICE, "S001",
     View(vip(), line("9.00"), [SpecificPrice(D("5.00"))]), "9.00", "rate:VIP"),
    ("expired rate falls through to a specific price", ALICE, "S001",
     View(vip(end=date(2026, 1, 31)), line("8.00"), [SpecificPrice(D("9.50"))]), "9.50", "specific"),
    ("specific for everyone", BOB, "S001", View(specifics=[SpecificPrice(D("9.00"))]), "9.00", "specific"),
    ("specific dearer than retail: retail", BOB, "S001", View(specifics=[SpecificPrice(D("11.00"))]), "10.00", "retail"),
    ("store beats everyone", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00")), SpecificPrice(D("8.00"), store="S001")]), "8.00", "specific"),
    ("customer beats store", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), store="S001"), SpecificPrice(D("8.50"), customer_id="c-bob")]), "8.50", "specific"),
    ("customer+store beats customer", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), customer_id="c-bob"),
                     SpecificPrice(D("9.00"), customer_id="c-bob", store="S001")]), "9.00", "specific"),
    ("another store's price does not apply", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), store="S002"), SpecificPrice(D("9.00"))]), "9.00", "specific"),
    ("another customer's price does not apply", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), customer_id="c-alice")]), "10.00", "retail"),
    ("no customer: customer prices do not apply, store price does", None, "S001",
     View(specifics=[SpecificPrice(D("6.00"), customer_id="c-bob"), SpecificPrice(D("9.00"), store="S001")]), "9.00", "specific"),
    ("specific price not yet valid", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), start=date(2026, 6, 16))]), "10.00", "retail"),
    ("specific price expired", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), end=date(2026, 6, 14))]), "10.00", "retail"),
    ("specific price inside its window", BOB, "S001",
     View(specifics=[SpecificPrice(D("6.00"), start=date(2026, 6, 1), end=DAY)]), "6.00", "specific"),
    ("equally specific prices: the lower", BOB, "S001",
     View(specifics=[SpecificPrice(D("8.00")), SpecificPrice(D("7.50"))]), "7.50", "specific"),
]


@pytest.mark.parametrize("name,customer,store,view,unit,source", CASES, ids=[c[0] for c in CASES])
def test_unit_price(name, customer, store, view, unit, source):
    price = unit_price(MILK, customer, store, DAY, view)
    assert (str(price.unit), price.source) == (unit, source)
    assert price.retail == D("10.00")


def test_retail_is_rounded_half_up_to_cents():
    odd = Product(id="p", sku="P", description="P", retail_price=D("1.005"))
    assert str(unit_price(odd, None, "S001", DAY, View()).unit) == "1.01"
