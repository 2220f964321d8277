"""The catalogue: products, barcodes, rates, rate lines and specific prices.

Written at HQ only and replicated one way to every store through the same
change/seq machinery as customers. Record keys are derived from the natural
keys (``uuid5``) so that importing the same product, barcode or rate twice
updates one record instead of making two.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from lanehub.domain.entity import MAX_TEXT, UUID_RE, EntitySpec, check_bools, check_unknown, text_checks

NAMESPACE = uuid.UUID("6f1c3f36-6a0e-4c53-9d67-0f7a3f9e2b10")
CENT = Decimal("0.01")
RATE_STATUSES = ("active", "disabled")
RATE_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,19}$")
SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
BARCODE_RE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII; GS1 data keeps its own characters
MAX_MONEY = Decimal("1000000")


def natural_key(kind: str, *parts: str) -> str:
    """The record id of a catalogue record with this natural key."""
    return str(uuid.uuid5(NAMESPACE, ":".join((kind, *parts))))


def product_key(sku: str) -> str:
    return natural_key("product", sku)


def barcode_key(code: str) -> str:
    return natural_key("barcode", code)


def rate_key(code: str) -> str:
    return natural_key("rate", code.upper())


def rate_line_key(rate_id: str, product_id: str) -> str:
    return natural_key("rate_line", rate_id, product_id)


def specific_price_key(product_id: str, customer_id: str, store: str, start: str, end: str) -> str:
    return natural_key("specific_price", product_id, customer_id, store, start, end)


def money(value: Any) -> Decimal:
    """A money amount rounded half-up to cents; raises ValueError on anything else."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money_text(value: Any) -> str:
    return str(money(value))


def parse_day(value: str) -> date:
    return date.fromisoformat(value)


def _check_money(fields: dict, name: str, errors: dict, maximum: Decimal = MAX_MONEY) -> None:
    if name in fields and name not in errors:
        try:
            amount = money(fields[name])
        except ValueError:
            errors[name] = "must be an amount like 12.30"
            return
        if amount < 0 or amount > maximum:
            errors[name] = f"must be between 0 and {maximum}"


def _check_day(fields: dict, name: str, errors: dict) -> None:
    value = fields.get(name)
    if value and name not in errors:
        try:
            parse_day(value)
        except (TypeError, ValueError):
            errors[name] = "must be a date YYYY-MM-DD"


def _check_ids(fields: dict, names: tuple[str, ...], errors: dict, optional: tuple[str, ...] = ()) -> None:
    for name in names:
        value = fields.get(name)
        if name in fields and name not in errors and not (name in optional and value == "") and not UUID_RE.match(fields[name]):
            errors[name] = "must be a record id"


def _check_window(fields: dict, errors: dict) -> None:
    if fields.get("start") and fields.get("end") and "start" not in errors and "end" not in errors:
        if fields["end"] < fields["start"]:
            errors["end"] = "must not be before the start date"


# --- products ---------------------------------------------------------------

PRODUCT_FIELDS = ("sku", "description", "brand", "size", "retail_price", "tax_rate", "active")


def check_product_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {name: MAX_TEXT for name in ("sku", "description", "brand", "size", "retail_price", "tax_rate")})
    check_unknown(fields, PRODUCT_FIELDS, "product", errors)
    if "sku" in fields and "sku" not in errors and not SKU_RE.match(fields["sku"]):
        errors["sku"] = "must be 1-40 letters, digits, '_', '.' or '-'"
    if "description" in fields and "description" not in errors and not fields["description"].strip():
        errors["description"] = "is required"
    _check_money(fields, "retail_price", errors)
    _check_money(fields, "tax_rate", errors, Decimal("100"))
    check_bools(fields, ("active",), errors)
    return errors


def normalize_amounts(names: tuple[str, ...]):
    def normalize(fields: dict) -> dict:
        out = {}
        for name, value in fields.items():
            if isinstance(value, str):
                value = " ".join(value.split())
            if name in names and value not in ("", None):
                try:
                    value = money_text(value)
                except ValueError:
                    pass  # left as given: the field check names the error
            out[name] = value
        return out
    return normalize


PRODUCT = EntitySpec(
    name="product",
    table="products",
    fields=PRODUCT_FIELDS,
    defaults={"sku": "", "description": "", "brand": "", "size": "", "retail_price": "0.00", "tax_rate": "0.00", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_product_fields,
    required=("sku", "description", "retail_price"),
    immutable=("sku",),
    normalize=normalize_amounts(("retail_price", "tax_rate")),
    indexes=(("sku",),),
)


# --- barcodes ---------------------------------------------------------------

def check_barcode_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"code": 64, "product_id": 36})
    check_unknown(fields, ("code", "product_id", "active"), "barcode", errors)
    if "code" in fields and "code" not in errors and not BARCODE_RE.match(fields["code"]):
        errors["code"] = "must be 1-64 printable characters without spaces"
    _check_ids(fields, ("product_id",), errors)
    check_bools(fields, ("active",), errors)
    return errors


BARCODE = EntitySpec(
    name="barcode",
    table="barcodes",
    fields=("code", "product_id", "active"),
    defaults={"code": "", "product_id": "", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_barcode_fields,
    required=("code", "product_id"),
    immutable=("code",),
    indexes=(("code",), ("product_id",)),
)


# --- rates ------------------------------------------------------------------

RATE_FIELDS = ("code", "name", "start", "end", "status")


def check_rate_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"code": 20, "name": MAX_TEXT, "start": 10, "end": 10, "status": 10})
    check_unknown(fields, RATE_FIELDS, "rate", errors)
    if "code" in fields and "code" not in errors and not RATE_CODE_RE.match(fields["code"]):
        errors["code"] = "must be 1-20 upper-case letters, digits, '_' or '-'"
    if "name" in fields and "name" not in errors and not fields["name"].strip():
        errors["name"] = "is required"
    if "start" in fields and "start" not in errors and not fields["start"]:
        errors["start"] = "is required"
    _check_day(fields, "start", errors)
    _check_day(fields, "end", errors)
    _check_window(fields, errors)
    if "status" in fields and fields["status"] not in RATE_STATUSES:
        errors["status"] = f"must be one of {', '.join(RATE_STATUSES)}"
    return errors


def normalize_rate(fields: dict) -> dict:
    out = {}
    for name, value in fields.items():
        if isinstance(value, str):
            value = " ".join(value.split())
            if name in ("code", "status"):
                value = value.upper() if name == "code" else value.lower()
        out[name] = value
    return out


RATE = EntitySpec(
    name="rate",
    table="rates",
    fields=RATE_FIELDS,
    defaults={"code": "", "name": "", "start": "", "end": "", "status": "active"},
    check_fields=check_rate_fields,
    required=("code", "name", "start"),
    immutable=("code",),
    normalize=normalize_rate,
    indexes=(("code",),),
)


def check_rate_line_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"rate_id": 36, "product_id": 36, "price": 20, "discount_pct": 20})
    check_unknown(fields, ("rate_id", "product_id", "price", "discount_pct", "active"), "rate line", errors)
    _check_ids(fields, ("rate_id", "product_id"), errors)
    _check_money(fields, "price", errors)
    _check_money(fields, "discount_pct", errors, Decimal("100"))
    check_bools(fields, ("active",), errors)
    return errors


RATE_LINE = EntitySpec(
    name="rate_line",
    table="rate_lines",
    fields=("rate_id", "product_id", "price", "discount_pct", "active"),
    defaults={"rate_id": "", "product_id": "", "price": "0.00", "discount_pct": "0.00", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_rate_line_fields,
    required=("rate_id", "product_id"),
    immutable=("rate_id", "product_id"),
    normalize=normalize_amounts(("price", "discount_pct")),
    indexes=(("rate_id", "product_id"),),
)


# --- specific prices --------------------------------------------------------

SPECIFIC_FIELDS = ("product_id", "customer_id", "store", "price", "start", "end", "active")


def check_specific_price_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"product_id": 36, "customer_id": 36, "store": 32, "price": 20, "start": 10, "end": 10})
    check_unknown(fields, SPECIFIC_FIELDS, "specific price", errors)
    _check_ids(fields, ("product_id", "customer_id"), errors, optional=("customer_id",))
    _check_money(fields, "price", errors)
    _check_day(fields, "start", errors)
    _check_day(fields, "end", errors)
    _check_window(fields, errors)
    check_bools(fields, ("active",), errors)
    return errors


SPECIFIC_PRICE = EntitySpec(
    name="specific_price",
    table="specific_prices",
    fields=SPECIFIC_FIELDS,
    defaults={"product_id": "", "customer_id": "", "store": "", "price": "0.00", "start": "", "end": "", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_specific_price_fields,
    required=("product_id", "price"),
    immutable=("product_id", "customer_id", "store", "start", "end"),
    normalize=normalize_amounts(("price",)),
    indexes=(("product_id",),),
)


CATALOGUE_ENTITIES = (PRODUCT, BARCODE, RATE, RATE_LINE, SPECIFIC_PRICE)
