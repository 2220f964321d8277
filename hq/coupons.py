"""HQ's households and coupons: issuing, and the reservation that lets only one
ticket in the chain redeem a coupon (docs/protocol.md: requests on sync/req/{store})."""

from __future__ import annotations

import secrets
import time
from datetime import date
from typing import Any

from hq.db import HQDatabase
from lanehub.domain.catalogue import money_text
from lanehub.domain.coupons import coupon_key, coupon_refusal, find_coupon
from lanehub.domain.model import ENTITIES, ValidationError
from lanehub.protocol.change import new_id
from lanehub.protocol.hlc import now_iso
from lanehub.replication.sqlite import transaction

RESERVATION_TTL = 30 * 60  # seconds a ticket may hold a coupon before closing or voiding
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till


class CouponRefused(ValueError):
    """A reservation HQ refuses, with the reason the cashier sees."""


class HQCoupons:
    def __init__(self, db: HQDatabase):
        self.db = db

    def _stored(self, entity: str, key: str) -> dict[str, Any]:
        """A record known to be there: just written, or its key just read from its table."""
        record = self.db.replica.get(entity, key)
        assert record is not None, (entity, key)
        return record

    # --- households --------------------------------------------------------------------

    def _customer(self, ref: str) -> dict[str, Any]:
        found = self.db.find_customer(ref)
        if found is None:
            raise ValidationError({"customer": f"no customer {ref}"})
        return found

    def create_household(self, name: str, head_ref: str, by: str) -> dict[str, Any]:
        head = self._customer(head_ref)
        fields = {"name": " ".join(name.split()), "head_customer_id": head["id"], "active": True}
        errors = ENTITIES["household"].check_fields(fields, self.db.codes)
        if errors:
            raise ValidationError(errors)
        key = new_id()
        with transaction(self.db.conn):
            self.db.write("household", key, fields, by)
            self.db.write("customer", head["id"], {"household_id": key, "updated_at": now_iso(), "updated_by": by}, by)
        return self._stored("household", key)

    def household(self, ref: str) -> dict[str, Any]:
        """A household by id, or by the code of any of its members."""
        record = self.db.replica.get("household", ref)
        if record is None:
            member = self.db.find_customer(ref)
            if member and member["household_id"]:
                record = self.db.replica.get("household", member["household_id"])
        if record is None:
            raise ValidationError({"household": f"no household {ref}"})
        return record

    def set_household(self, customer_ref: str, household_id: str, by: str) -> dict[str, Any]:
        """Put a customer in a household ('' takes them out)."""
        customer = self._customer(customer_ref)
        with transaction(self.db.conn):
            if customer["household_id"] != household_id:
                self.db.write("customer", customer["id"], {"household_id": household_id, "updated_at": now_iso(),
                                                            "updated_by": by}, by)
        return self._stored("customer", customer["id"])

    def members(self, household_id: str) -> list[dict[str, Any]]:
        keys = [r[0] for r in self.db.conn.execute("SELECT id FROM customers WHERE household_id = ? ORDER BY code",
                                                   (household_id,))]
        return [self._stored("customer", k) for k in keys]

    # --- coupons ------------------------------------------------------------------------

    def issue(self, kind: str, value: str, by: str, *, customer: str = "", household: str = "", code: str = "",
              start: str = "", end: str = "") -> dict[str, Any]:
        if bool(customer) == bool(household):
            raise ValidationError({"to": "issue a coupon to exactly one customer or one household"})
        customer_id = self._customer(customer)["id"] if customer else ""
        household_id = self.household(household)["id"] if household else ""
        code = code.strip().upper() or "CPN-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        spec = ENTITIES["coupon"]
        fields = spec.normalize({"code": code, "kind": kind, "value": value, "customer_id": customer_id,
                                 "household_id": household_id, "start": start, "end": end, "status": "active",
                                 "issued_at": now_iso()})
        if fields.get("value"):
            try:
                fields["value"] = money_text(fields["value"])
            except ValueError:
                pass  # the field check names it
        errors = spec.check_fields(fields, self.db.codes)
        if errors:
            raise ValidationError(errors)
        with transaction(self.db.conn):
            if self.db.replica.get("coupon", coupon_key(code)):
                raise ValidationError({"code": f"coupon {code} already exists"})
            self.db.write("coupon", coupon_key(code), fields, by)
        return self._stored("coupon", coupon_key(code))

    def disable(self, code: str, by: str) -> dict[str, Any]:
        with transaction(self.db.conn):
            if not self.db.replica.get("coupon", coupon_key(code)):
                raise ValidationError({"code": f"no coupon {code.upper()}"})
            self.db.write("coupon", coupon_key(code), {"status": "disabled"}, by)
        return self._stored("coupon", coupon_key(code))

    def double_uses(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.conn.execute(
            "SELECT c.code, d.ticket, d.store, d.other_ticket, d.flagged_at FROM coupon_double_uses d "
            "JOIN coupons c ON c.id = d.coupon_id ORDER BY d.flagged_at")]

    # --- redemption (answers to stores' requests) -----------------------------------------

    def reserve(self, store: str, code: str, ticket: str, customer_id: str) -> dict[str, Any]:
        """Hold the coupon for ``ticket``; the store's coupon_use change on close redeems it."""
        conn = self.db.conn
        with transaction(conn):
            coupon = find_coupon(conn, code)
            customer = self.db.replica.get("customer", customer_id) if customer_id else None
            reason = coupon_refusal(conn, coupon, customer, date.today(), ticket)
            if reason:
                raise CouponRefused(reason)
            assert coupon is not None  # coupon_refusal refuses a missing coupon
            held = conn.execute("SELECT store, ticket, at FROM coupon_reservations WHERE coupon_id = ?",
                                (coupon["id"],)).fetchone()
            if held and held["ticket"] != ticket and time.time() - held["at"] < RESERVATION_TTL:
                raise CouponRefused(f"coupon {coupon['code']} is being redeemed on another ticket (store {held['store']})")
            conn.execute("INSERT INTO coupon_reservations (coupon_id, store, ticket, at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(coupon_id) DO UPDATE SET store = excluded.store, ticket = excluded.ticket, at = excluded.at",
                         (coupon["id"], store, ticket, time.time()))
        return {"coupon": coupon["code"], "ticket": ticket, "reserved": True}

    def release(self, store: str, code: str, ticket: str) -> dict[str, Any]:
        with transaction(self.db.conn):
            cursor = self.db.conn.execute("DELETE FROM coupon_reservations WHERE coupon_id = ? AND store = ? AND ticket = ?",
                                          (coupon_key(code), store, ticket))
        return {"coupon": code.upper(), "ticket": ticket, "released": cursor.rowcount > 0}
