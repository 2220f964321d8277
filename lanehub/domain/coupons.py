"""Households and coupons (Rattail's Household / Shared Accounts).

A household groups customers under a head account. A coupon (amount or
percent, validity window) is issued at HQ to a customer or to a household;
once any member redeems it, it is spent for all of them in every store.
A redemption is a ``coupon_use`` record: written by the store that closed the
ticket, so it travels through the outbox and is never lost; HQ reserves a
coupon for one ticket at a time so that two stores cannot both take it.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from decimal import Decimal

from lanehub.domain.catalogue import _check_day, _check_ids, _check_money, _check_window, money, natural_key
from lanehub.domain.entity import MAX_TEXT, EntitySpec, check_bools, check_unknown, text_checks

COUPON_KINDS = ("amount", "percent")
COUPON_STATUSES = ("active", "disabled")
USE_MODES = ("online", "offline")
COUPON_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,31}$")


def coupon_key(code: str) -> str:
    return natural_key("coupon", code.upper())


def coupon_use_key(coupon_id: str, ticket: str) -> str:
    return natural_key("coupon_use", coupon_id, ticket)


def check_household_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"name": MAX_TEXT, "head_customer_id": 36})
    check_unknown(fields, ("name", "head_customer_id", "active"), "household", errors)
    if "name" in fields and "name" not in errors and not fields["name"].strip():
        errors["name"] = "is required"
    _check_ids(fields, ("head_customer_id",), errors)
    check_bools(fields, ("active",), errors)
    return errors


HOUSEHOLD = EntitySpec(
    name="household",
    table="households",
    fields=("name", "head_customer_id", "active"),
    defaults={"name": "", "head_customer_id": "", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_household_fields,
    required=("name", "head_customer_id"),
)

COUPON_FIELDS = ("code", "kind", "value", "customer_id", "household_id", "start", "end", "status", "issued_at")


def check_coupon_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {name: 40 for name in COUPON_FIELDS if name != "value"} | {"value": 20})
    check_unknown(fields, COUPON_FIELDS, "coupon", errors)
    if "code" in fields and "code" not in errors and not COUPON_CODE_RE.match(fields["code"]):
        errors["code"] = "must be 3-32 upper-case letters, digits, '_' or '-'"
    if "kind" in fields and fields["kind"] not in COUPON_KINDS:
        errors["kind"] = f"must be one of {', '.join(COUPON_KINDS)}"
    _check_money(fields, "value", errors, Decimal("100") if fields.get("kind") == "percent" else Decimal("100000"))
    _check_ids(fields, ("customer_id", "household_id"), errors, optional=("customer_id", "household_id"))
    _check_day(fields, "start", errors)
    _check_day(fields, "end", errors)
    _check_window(fields, errors)
    if "status" in fields and fields["status"] not in COUPON_STATUSES:
        errors["status"] = f"must be one of {', '.join(COUPON_STATUSES)}"
    return errors


COUPON = EntitySpec(
    name="coupon",
    table="coupons",
    fields=COUPON_FIELDS,
    defaults={name: "" for name in COUPON_FIELDS} | {"kind": "amount", "value": "0.00", "status": "active"},
    check_fields=check_coupon_fields,
    required=("code", "kind", "value"),
    immutable=("code", "kind", "value", "customer_id", "household_id"),
    indexes=(("code",),),
)


def check_coupon_use_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"coupon_id": 36, "ticket": 64, "store": 32, "at": 40, "mode": 8, "discount": 20})
    check_unknown(fields, ("coupon_id", "ticket", "store", "at", "mode", "discount"), "coupon use", errors)
    _check_ids(fields, ("coupon_id",), errors)
    if "mode" in fields and fields["mode"] not in USE_MODES:
        errors["mode"] = f"must be one of {', '.join(USE_MODES)}"
    _check_money(fields, "discount", errors, Decimal("100000"))
    return errors


COUPON_USE = EntitySpec(
    name="coupon_use",
    table="coupon_uses",
    fields=("coupon_id", "ticket", "store", "at", "mode", "discount"),
    defaults={"coupon_id": "", "ticket": "", "store": "", "at": "", "mode": "online", "discount": "0.00"},
    check_fields=check_coupon_use_fields,
    required=("coupon_id", "ticket", "store", "at"),
    immutable=("coupon_id", "ticket", "store", "at", "mode", "discount"),
    indexes=(("coupon_id",),),
)

COUPON_ENTITIES = (HOUSEHOLD, COUPON, COUPON_USE)


# --- rules shared by HQ and the edges (same tables in every replica) -----------

def find_coupon(conn: sqlite3.Connection, code: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM coupons WHERE id = ?", (coupon_key(code.strip()),)).fetchone()


def coupon_refusal(conn: sqlite3.Connection, coupon, customer: dict | None, day: date, ticket: str) -> str | None:
    """Why this coupon cannot be redeemed on ``ticket`` for ``customer``, or None."""
    if coupon is None:
        return "no such coupon"
    if coupon["status"] != "active":
        return f"coupon {coupon['code']} is disabled"
    if coupon["start"] and day < date.fromisoformat(coupon["start"]):
        return f"coupon {coupon['code']} is valid from {coupon['start']}"
    if coupon["end"] and day > date.fromisoformat(coupon["end"]):
        return f"coupon {coupon['code']} expired on {coupon['end']}"
    if customer is None:
        return "attach the customer the coupon was issued to first"
    owner = coupon["customer_id"] == customer["id"] or (
        coupon["household_id"] and coupon["household_id"] == customer.get("household_id"))
    if not owner:
        return f"coupon {coupon['code']} was issued to another customer or household"
    used = conn.execute("SELECT ticket, store FROM coupon_uses WHERE coupon_id = ? AND ticket != ? LIMIT 1",
                        (coupon["id"], ticket)).fetchone()
    if used:
        return f"coupon {coupon['code']} was already redeemed (ticket {used['ticket']})"
    return None


def coupon_discount(kind: str, value: str, subtotal: Decimal) -> Decimal:
    """The discount on a ticket: never more than the ticket, half-up to cents."""
    if kind == "percent":
        return min(subtotal, money(subtotal * Decimal(value) / 100))
    return min(subtotal, money(value))
