"""HQ's catalogue writes: products (CSV import), rates, rate lines, specific prices.

Every write is a normal HQ change (``seq``), so it reaches every store like
a customer edit. Nothing is ever deleted: a product, barcode, line or price
is deactivated. CSV and POS imports go through ``hq/imports/engine.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hq.db import HQDatabase
from lanehub.domain.catalogue import product_key, rate_key, rate_line_key, specific_price_key
from lanehub.domain.model import ENTITIES, ValidationError
from lanehub.domain.ownership import refuse_owned
from lanehub.domain.pricing import Price, PricingCustomer, SqliteCatalogue, unit_price
from lanehub.domain.references import product_problem, refuse_unknown_rate, store_problem
from lanehub.replication.sqlite import transaction


class HQCatalogue:
    def __init__(self, db: HQDatabase):
        self.db = db
        self.view = SqliteCatalogue(db.conn)

    # --- the one write path ---------------------------------------------------------------

    def _checked(self, entity: str, key: str, fields: dict[str, Any]) -> tuple[dict | None, dict[str, Any]]:
        """(current record, the fields that would change); raises ValidationError."""
        spec = ENTITIES[entity]
        fields = spec.normalize(fields)
        errors = spec.check_fields(fields, self.db.codes)
        current = self.db.replica.get(entity, key)
        if current is None:
            for name in spec.required:
                if name not in errors and str(fields.get(name, "")).strip() == "":
                    errors[name] = "is required"
        else:
            for name in spec.immutable:
                if name in fields and fields[name] != current[name] and name not in errors:
                    errors[name] = "cannot be changed"
        if errors:
            raise ValidationError(errors)
        base = current or dict(spec.defaults)
        changed = {k: v for k, v in fields.items() if current is None or base.get(k) != v}
        return current, changed

    def upsert(self, entity: str, key: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
        """Create or update one record inside the caller's transaction; returns what changed."""
        current, changed = self._checked(entity, key, fields)
        if changed:
            self.db.write(entity, key, (dict(ENTITIES[entity].defaults) | changed) if current is None else changed, by)
        return changed

    def _stored(self, entity: str, key: str) -> dict[str, Any]:
        """A record known to be there: just written, or its key just read from its table."""
        record = self.db.replica.get(entity, key)
        assert record is not None, (entity, key)
        return record

    # --- products -----------------------------------------------------------------------

    def product(self, sku: str) -> dict[str, Any] | None:
        return self.db.replica.get("product", product_key(sku))

    def barcodes(self, product_id: str) -> list[str]:
        return [r[0] for r in self.db.conn.execute(
            "SELECT code FROM barcodes WHERE product_id = ? AND active = 1 ORDER BY code", (product_id,))]

    # --- rates --------------------------------------------------------------------------

    def rate(self, code: str) -> dict[str, Any] | None:
        return self.db.replica.get("rate", rate_key(code))

    def rates(self) -> list[dict[str, Any]]:
        keys = [r[0] for r in self.db.conn.execute("SELECT id FROM rates ORDER BY code")]
        return [self._stored("rate", k) for k in keys]

    def put_rate(self, code: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
        """Create (start defaults to today) or edit a rate header; codes are upper-cased."""
        code = code.strip().upper()
        key = rate_key(code)
        with transaction(self.db.conn):
            current = self.db.replica.get("rate", key)
            if current is None:
                fields = {"start": date.today().isoformat(), "status": "active"} | {k: v for k, v in fields.items() if v is not None}
            else:
                refuse_owned(self.db.conn, "rate", current, {k: v for k, v in fields.items() if v is not None})
            merged = (current or {}) | {k: v for k, v in fields.items() if v is not None} | {"code": code}
            # The window is checked on the whole header, not only on the fields given.
            errors = ENTITIES["rate"].check_fields({k: merged[k] for k in ("start", "end") if k in merged},
                                                  self.db.codes)
            if errors:
                raise ValidationError(errors)
            self.upsert("rate", key, {k: v for k, v in fields.items() if v is not None} | {"code": code}, by)
        return self._stored("rate", key)

    def rate_lines(self, code: str) -> list[dict[str, Any]]:
        rows = self.db.conn.execute(
            "SELECT p.sku, p.description, p.retail_price, l.price, l.discount_pct FROM rate_lines l "
            "JOIN products p ON p.id = l.product_id WHERE l.rate_id = ? AND l.active = 1 ORDER BY p.sku",
            (rate_key(code),)).fetchall()
        return [dict(r) for r in rows]

    def set_rate_line(self, code: str, sku: str, price: str, discount_pct: str, by: str, *, active: bool = True) -> dict:
        rate = self._need("rate", rate_key(code), "rate", f"no rate {code.upper()}")
        product = self._need("product", product_key(sku), "sku", f"no product {sku}")
        with transaction(self.db.conn):
            return self.upsert("rate_line", rate_line_key(rate["id"], product["id"]), {
                "rate_id": rate["id"], "product_id": product["id"], "price": price, "discount_pct": discount_pct,
                "active": active}, by)

    def set_specific_price(self, sku: str, price: str, by: str, *, customer: str = "", store: str = "",
                           start: str = "", end: str = "", active: bool = True) -> dict:
        product = self._need("product", product_key(sku), "sku", f"no product {sku}")
        customer_id = ""
        if customer:
            found = self.db.find_customer(customer)
            if not found:
                raise ValidationError({"customer": f"no customer {customer}"})
            customer_id = found["id"]
        self._need_store(store)
        key = specific_price_key(product["id"], customer_id, store, start, end)
        with transaction(self.db.conn):
            return self.upsert("specific_price", key, {
                "product_id": product["id"], "customer_id": customer_id, "store": store, "price": price,
                "start": start, "end": end, "active": active}, by)

    def specific_prices(self, sku: str) -> list[dict[str, Any]]:
        product = self.product(sku)
        if not product:
            return []
        rows = self.db.conn.execute(
            "SELECT s.price, s.store, s.start, s.[end], coalesce(c.code, '') AS customer FROM specific_prices s "
            "LEFT JOIN customers c ON c.id = s.customer_id WHERE s.product_id = ? AND s.active = 1 "
            "ORDER BY customer, s.store, s.start", (product["id"],)).fetchall()
        return [dict(r) for r in rows]

    def assign_rate(self, customer: str, code: str, by: str) -> dict[str, Any]:
        """Give a customer a rate (empty code: none)."""
        found = self.db.find_customer(customer)
        if not found:
            raise ValidationError({"customer": f"no customer {customer}"})
        refuse_unknown_rate(self.db.conn, {"rate": code})
        return self.db.update_customer(found["id"], {"rate": code.upper()}, by)

    def price_check(self, sku: str, customer: str = "", store: str = "", day: date | None = None) -> Price:
        """The price a lane would charge (the same function the edge uses)."""
        product = self.view.product_by_code(sku)
        if product is None:
            raise ValidationError({"sku": product_problem(self.db.conn, sku)})
        self._need_store(store)
        who = None
        if customer:
            found = self.db.find_customer(customer)
            if not found:
                raise ValidationError({"customer": f"no customer {customer}"})
            who = PricingCustomer(id=found["id"], rate=found["rate"])
        return unit_price(product, who, store, day or date.today(), self.view)

    def _need_store(self, store: str) -> None:
        """A store named for a price must be a registered one ("" is every store)."""
        if store and not self.db.is_store(store):
            raise ValidationError({"store": store_problem(store, self.db.store_ids())})

    def _need(self, entity: str, key: str, name: str, message: str) -> dict[str, Any]:
        record = self.db.replica.get(entity, key)
        if record is None:
            raise ValidationError({name: message})
        return record

