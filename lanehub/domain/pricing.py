"""Unit prices, exactly as docs/protocol.md (normative).

``unit_price`` is a pure function of (product, customer, store, day,
catalogue view); the edge prices tickets with it and HQ's price check uses
the same function, so a price shown at HQ is the price charged at the lane.
``SqliteCatalogue`` is the view over a replica (raw cursors: the hot path).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from lanehub.domain.catalogue import money

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    description: str
    retail_price: Decimal
    brand: str = ""
    size: str = ""
    tax_rate: Decimal = Decimal("0.00")
    active: bool = True


@dataclass(frozen=True)
class PricingCustomer:
    id: str
    rate: str = ""  # rate code, or empty


@dataclass(frozen=True)
class Rate:
    id: str
    code: str
    start: date
    end: date | None
    status: str

    def in_force(self, day: date) -> bool:
        return self.status == "active" and self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class RateLine:
    price: Decimal
    discount_pct: Decimal

    def price_for(self, retail: Decimal) -> Decimal:
        base = retail if self.price == 0 else self.price
        return money(base * (1 - self.discount_pct / HUNDRED))


@dataclass(frozen=True)
class SpecificPrice:
    price: Decimal
    customer_id: str = ""
    store: str = ""
    start: date | None = None
    end: date | None = None

    def applies(self, customer_id: str | None, store: str, day: date) -> bool:
        if self.customer_id and self.customer_id != customer_id:
            return False
        if self.store and self.store != store:
            return False
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    @property
    def specificity(self) -> int:
        """customer+store 3, customer 2, store 1, everyone 0."""
        return 2 * bool(self.customer_id) + bool(self.store)


class CatalogueView(Protocol):
    def rate(self, code: str) -> Rate | None: ...

    def rate_line(self, rate_id: str, product_id: str) -> RateLine | None: ...

    def specific_prices(self, product_id: str) -> list[SpecificPrice]: ...


@dataclass(frozen=True)
class Price:
    unit: Decimal
    source: str  # "retail", "rate:<CODE>" or "specific"
    retail: Decimal


def unit_price(product: Product, customer: PricingCustomer | None, store: str, day: date, view: CatalogueView) -> Price:
    retail = money(product.retail_price)
    # 1. the customer's rate, when in force and it has a line for the product
    if customer is not None and customer.rate:
        rate = view.rate(customer.rate)
        if rate is not None and rate.in_force(day):
            line = view.rate_line(rate.id, product.id)
            if line is not None:
                price = line.price_for(retail)
                return Price(retail, "retail", retail) if retail < price else Price(price, f"rate:{rate.code}", retail)
    # 2. the most specific specific price that applies
    customer_id = customer.id if customer is not None else None
    candidates = [s for s in view.specific_prices(product.id) if s.applies(customer_id, store, day)]
    if candidates:
        # Most specific wins; among equally specific ones, the lowest price (the
        # customer is never charged more because two prices overlap).
        best = min(candidates, key=lambda s: (-s.specificity, s.price))
        price = money(best.price)
        return Price(retail, "retail", retail) if retail < price else Price(price, "specific", retail)
    # 3. retail
    return Price(retail, "retail", retail)


def _day(value: str) -> date | None:
    return date.fromisoformat(value) if value else None


class SqliteCatalogue:
    """The catalogue view over a replica's tables."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def product_by_code(self, code: str) -> Product | None:
        """A product by barcode, then by SKU; inactive products and barcodes are not sold."""
        row = self.conn.execute(
            "SELECT p.id, p.sku, p.description, p.brand, p.size, p.retail_price, p.tax_rate, p.active FROM barcodes b "
            "JOIN products p ON p.id = b.product_id WHERE b.code = ? AND b.active = 1 AND p.active = 1 LIMIT 1",
            (code,),
        ).fetchone()
        if row is None:
            row = self.conn.execute(
                "SELECT id, sku, description, brand, size, retail_price, tax_rate, active FROM products "
                "WHERE sku = ? AND active = 1 LIMIT 1", (code,),
            ).fetchone()
        return self._product(row) if row else None

    def product(self, product_id: str) -> Product | None:
        row = self.conn.execute(
            "SELECT id, sku, description, brand, size, retail_price, tax_rate, active FROM products WHERE id = ?",
            (product_id,),
        ).fetchone()
        return self._product(row) if row else None

    @staticmethod
    def _product(row) -> Product:
        return Product(id=row[0], sku=row[1], description=row[2], brand=row[3] or "", size=row[4] or "",
                       retail_price=Decimal(row[5] or "0"), tax_rate=Decimal(row[6] or "0"), active=bool(row[7]))

    def rate(self, code: str) -> Rate | None:
        row = self.conn.execute("SELECT id, code, start, [end], status FROM rates WHERE code = ? LIMIT 1", (code.upper(),)).fetchone()
        if row is None or not row[2]:
            return None
        return Rate(id=row[0], code=row[1], start=date.fromisoformat(row[2]), end=_day(row[3]), status=row[4])

    def rate_line(self, rate_id: str, product_id: str) -> RateLine | None:
        row = self.conn.execute(
            "SELECT price, discount_pct FROM rate_lines WHERE rate_id = ? AND product_id = ? AND active = 1 LIMIT 1",
            (rate_id, product_id),
        ).fetchone()
        return RateLine(price=Decimal(row[0] or "0"), discount_pct=Decimal(row[1] or "0")) if row else None

    def specific_prices(self, product_id: str) -> list[SpecificPrice]:
        rows = self.conn.execute(
            "SELECT price, customer_id, store, start, [end] FROM specific_prices WHERE product_id = ? AND active = 1",
            (product_id,),
        ).fetchall()
        return [SpecificPrice(price=Decimal(r[0] or "0"), customer_id=r[1] or "", store=r[2] or "",
                              start=_day(r[3]), end=_day(r[4])) for r in rows]
