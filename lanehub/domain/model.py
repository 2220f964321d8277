"""Replicated entities: their fields, defaults, validation and search keys.

Each entity is an ``EntitySpec`` in ``ENTITIES``; the replication engine
(``lanehub.replication.replica``) works on any of them, so the catalogue of later issues
plugs in here without touching the engine.
"""

from __future__ import annotations

from typing import Any

from lanehub.domain.addresses import ADDRESS
from lanehub.domain.catalogue import CATALOGUE_ENTITIES
from lanehub.domain.codes import CodeFormat
from lanehub.domain.coupons import COUPON_ENTITIES
from lanehub.domain.entity import (  # noqa: F401
    CARD_KINDS,
    CARD_RE,
    COUNTRY_RE,
    CUSTOMER_STATUSES,
    EMAIL_RE,
    MAX_NOTES,
    MAX_TEXT,
    PAYMENT_STATUSES,
    PHONE_RE,
    UUID_RE,
    EntitySpec,
    ValidationError,
    check_bools,
    check_unknown,
    digits,
    normalize_text,
    postcode_key,
    text_checks,
)
from lanehub.domain.extra_fields import CUSTOMER_EXTRA, EXTRA_FIELD
from lanehub.domain.ownership import FIELD_RULE
from lanehub.domain.payment_cards import payment_card_errors
from lanehub.domain.purchase_summaries import PURCHASE_SUMMARY
from lanehub.domain.sales import SALE
from lanehub.domain.users import USER_ENTITIES

# --- customers --------------------------------------------------------------

CUSTOMER_TEXT = (
    "code", "first_name", "last_name", "email", "phone", "mobile", "tax_id",
    "street", "city", "postcode", "country", "contact", "notes", "rate",
    "payment_status", "status", "origin_store", "created_at", "created_by",
    "updated_at", "updated_by", "household_id", "merged_into",
    # The key of the customer in an external system (POS customer number); set by imports only.
    "external_id",
)
CUSTOMER_FIELDS = CUSTOMER_TEXT + ("active", "no_paper")
# What a person may set through a form, a lane or the CLI.
CUSTOMER_EDITABLE = (
    "first_name", "last_name", "email", "phone", "mobile", "tax_id", "street",
    "city", "postcode", "country", "contact", "notes", "rate",
    "payment_status", "status", "no_paper",
)
CUSTOMER_DEFAULTS: dict[str, Any] = {name: "" for name in CUSTOMER_TEXT} | {
    "payment_status": "valid",
    "status": "open",
    "active": True,
    "no_paper": False,
}


def normalize_customer(fields: dict) -> dict:
    out = {}
    for name, value in fields.items():
        if isinstance(value, str):
            value = " ".join(value.split()) if name != "notes" else value.strip()
            if name == "country":
                value = value.upper()
            if name == "rate":
                value = value.upper()
            if name == "email":
                value = value.strip()
        out[name] = value
    return out


def check_customer_fields(fields: dict, codes: CodeFormat) -> dict[str, str]:
    limits = {name: MAX_TEXT for name in CUSTOMER_TEXT} | {"notes": MAX_NOTES, "postcode": 16}
    # Every write of a customer is checked here (pages, API, CLI, imports, a store's
    # changes at HQ): a payment card number in any field is refused, masked.
    errors = payment_card_errors(fields)
    errors |= {k: v for k, v in text_checks(fields, limits).items() if k not in errors}
    check_unknown(fields, CUSTOMER_FIELDS, "customer", errors)
    for name in ("first_name", "last_name"):
        if name in fields and name not in errors and not fields[name].strip():
            errors[name] = "is required"
    if fields.get("email") and "email" not in errors and not EMAIL_RE.match(fields["email"]):
        errors["email"] = "is not a valid e-mail address"
    for name in ("phone", "mobile"):
        value = fields.get(name)
        if value and name not in errors:
            if not PHONE_RE.match(value) or not 6 <= len(digits(value)) <= 15:
                errors[name] = "is not a valid phone number (6-15 digits, optional +)"
    if fields.get("country") and "country" not in errors and not COUNTRY_RE.match(fields["country"]):
        errors["country"] = "must be a two-letter country code (e.g. ES, GB)"
    if "code" in fields and "code" not in errors and not codes.is_valid(fields["code"]):
        errors["code"] = f"is not a customer code ({codes.format(42)} or {codes.provisional('S001', 1)})"
    if fields.get("household_id") and "household_id" not in errors and not UUID_RE.match(fields["household_id"]):
        errors["household_id"] = "must be a household id"
    if "payment_status" in fields and fields["payment_status"] not in PAYMENT_STATUSES:
        errors["payment_status"] = f"must be one of {', '.join(PAYMENT_STATUSES)}"
    if "status" in fields and fields["status"] not in CUSTOMER_STATUSES:
        errors["status"] = f"must be one of {', '.join(CUSTOMER_STATUSES)}"
    check_bools(fields, ("active", "no_paper"), errors)
    return errors


def derive_customer(record: dict) -> dict:
    return {
        "name_key": normalize_text(f"{record.get('first_name', '')} {record.get('last_name', '')}"),
        "email_key": (record.get("email") or "").strip().casefold(),
        "phone_key": digits(record.get("phone", "")),
        "mobile_key": digits(record.get("mobile", "")),
        "postcode_key": postcode_key(record.get("postcode", "")),
    }


def checked_customer_write(fields: dict, codes: CodeFormat, *, new: bool) -> dict:
    """Normalize and validate the fields a person gives for a new or changed
    customer (form, lane, CLI); raises ``ValidationError`` naming each field."""
    fields = normalize_customer({k: v for k, v in fields.items() if v is not None})
    errors = check_customer_fields(fields, codes)
    if new:
        for name in ("first_name", "last_name"):
            if not str(fields.get(name, "")).strip() and name not in errors:
                errors[name] = "is required"
    for name in sorted(set(fields) & {"code", "origin_store", "created_at", "created_by", "household_id",
                                         "merged_into", "external_id"}):
        errors[name] = "cannot be set here"
    if errors:
        raise ValidationError(errors)
    return fields


CUSTOMER = EntitySpec(
    name="customer",
    table="customers",
    fields=CUSTOMER_FIELDS,
    defaults=CUSTOMER_DEFAULTS,
    bools=frozenset({"active", "no_paper"}),
    check_fields=check_customer_fields,
    required=("code", "first_name", "last_name"),
    immutable=("code", "origin_store", "created_at", "created_by"),
    derive=derive_customer,
    derived_columns=("name_key", "email_key", "phone_key", "mobile_key", "postcode_key"),
    derived_from=("first_name", "last_name", "email", "phone", "mobile", "postcode"),
    normalize=normalize_customer,
    fts=("first_name", "last_name"),
    indexes=(("code",), ("name_key",), ("email_key",), ("phone_key",), ("mobile_key",), ("postcode_key",),
             ("external_id",)),
)


# --- cards ------------------------------------------------------------------

def check_card_fields(fields: dict, codes: CodeFormat) -> dict[str, str]:
    errors = payment_card_errors({"number": fields["number"]}) if "number" in fields else {}
    errors |= {k: v for k, v in text_checks(fields, {"number": 40, "customer_id": 36, "kind": 16}).items() if k not in errors}
    if "number" in fields and "number" not in errors and not CARD_RE.match(fields["number"]):
        errors["number"] = "must be 4-40 letters, digits or '-'"
    if "customer_id" in fields and "customer_id" not in errors and not UUID_RE.match(fields["customer_id"]):
        errors["customer_id"] = "must be a customer id"
    if "kind" in fields and fields["kind"] not in CARD_KINDS:
        errors["kind"] = f"must be one of {', '.join(CARD_KINDS)}"
    check_bools(fields, ("active",), errors)
    check_unknown(fields, ("number", "customer_id", "kind", "active"), "card", errors)
    return errors


CARD = EntitySpec(
    name="card",
    table="cards",
    fields=("number", "customer_id", "kind", "active"),
    defaults={"number": "", "customer_id": "", "kind": "customer", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_card_fields,
    required=("number", "customer_id"),
    immutable=("number",),
    indexes=(("number",), ("customer_id",)),
    normalize=lambda fields: {k: (v.strip().upper() if k == "number" and isinstance(v, str) else v) for k, v in fields.items()},
)


# --- code aliases (a provisional code replaced by HQ still resolves) ---------

def check_alias_fields(fields: dict, codes: CodeFormat) -> dict[str, str]:
    errors = text_checks(fields, {"alias": MAX_TEXT, "customer_id": 36})
    check_unknown(fields, ("alias", "customer_id"), "code alias", errors)
    return errors


CODE_ALIAS = EntitySpec(
    name="code_alias",
    table="code_aliases",
    fields=("alias", "customer_id"),
    defaults={"alias": "", "customer_id": ""},
    check_fields=check_alias_fields,
    required=("alias", "customer_id"),
    immutable=("alias", "customer_id"),
    indexes=(("alias",),),
)


# --- marketing consents (history: one record per grant or revocation) --------

CONSENT_CHANNELS = ("email", "sms", "post")
CONSENT_FIELDS = ("customer_id", "channel", "granted", "at", "store", "lane", "user")


def check_consent_fields(fields: dict, codes: CodeFormat) -> dict[str, str]:
    errors = text_checks(fields, {"customer_id": 36, "channel": 8, "at": 40, "store": 32, "lane": 32, "user": MAX_TEXT})
    check_unknown(fields, CONSENT_FIELDS, "consent", errors)
    if "customer_id" in fields and "customer_id" not in errors and not UUID_RE.match(fields["customer_id"]):
        errors["customer_id"] = "must be a customer id"
    if "channel" in fields and fields["channel"] not in CONSENT_CHANNELS:
        errors["channel"] = f"must be one of {', '.join(CONSENT_CHANNELS)}"
    check_bools(fields, ("granted",), errors)
    return errors


CONSENT = EntitySpec(
    name="consent",
    table="consents",
    fields=CONSENT_FIELDS,
    defaults={"customer_id": "", "channel": "", "granted": False, "at": "", "store": "", "lane": "", "user": ""},
    bools=frozenset({"granted"}),
    check_fields=check_consent_fields,
    required=("customer_id", "channel", "at"),
    immutable=CONSENT_FIELDS,  # history is never rewritten
    indexes=(("customer_id", "channel", "at"),),
)


def current_consents(conn, customer_id: str) -> dict[str, bool]:
    """Each channel's latest grant or revocation (no record: not granted)."""
    out = {channel: False for channel in CONSENT_CHANNELS}
    for row in conn.execute("SELECT channel, granted FROM consents WHERE customer_id = ? ORDER BY at, rid",
                            (customer_id,)):
        out[row[0]] = bool(row[1])
    return out


ENTITIES: dict[str, EntitySpec] = {spec.name: spec for spec in (CUSTOMER, CARD, CODE_ALIAS, *CATALOGUE_ENTITIES, SALE, CONSENT,
                                                                *COUPON_ENTITIES, *USER_ENTITIES, FIELD_RULE,
                                                                EXTRA_FIELD, CUSTOMER_EXTRA, ADDRESS, PURCHASE_SUMMARY)}

# Entities a store may write; code aliases and the catalogue are made by HQ only.
STORE_WRITABLE = frozenset({"customer", "card", "sale", "consent", "coupon_use", "customer_extra", "address"})


def display_name(record: dict) -> str:
    return f"{record.get('first_name', '')} {record.get('last_name', '')}".strip()
