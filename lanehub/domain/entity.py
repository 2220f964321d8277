"""Entity specs and field checks shared by every replicated record type."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

from lanehub.domain.codes import CodeFormat

PAYMENT_STATUSES = ("valid", "pending", "defaulter")
CUSTOMER_STATUSES = ("open", "closed")
CARD_KINDS = ("customer", "loyalty")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]+$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
CARD_RE = re.compile(r"^[A-Za-z0-9-]{4,40}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The combining marks NFKD splits accents into (U+0300-036F covers Latin, Greek, Cyrillic).
COMBINING_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")

# Yes/no words accepted in CSV files and POS databases (English and Spanish POS exports).
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "active", "t", "s", "si", "sí"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "inactive", "f"})

MAX_TEXT = 200
MAX_NOTES = 4000


def normalize_text(value: str) -> str:
    """Lower-case, accents removed, whitespace collapsed: for matching, never for display."""
    if not value:
        return ""
    if value.isascii():  # the common case, ten times cheaper (a snapshot derives a million)
        return " ".join(value.lower().split())
    decomposed = unicodedata.normalize("NFKD", value)
    plain = COMBINING_RE.sub("", decomposed)
    return " ".join(plain.casefold().split())


NON_DIGITS_RE = re.compile(r"\D+")


def digits(value: str) -> str:
    return NON_DIGITS_RE.sub("", value) if value else ""


def postcode_key(value: str) -> str:
    return "".join((value or "").upper().split())


@dataclass(frozen=True)
class EntitySpec:
    """A replicated record type."""

    name: str
    table: str
    fields: tuple[str, ...]
    defaults: dict[str, Any]
    bools: frozenset[str] = frozenset()
    # field -> error, for the fields of a change (each value on its own)
    check_fields: Callable[[dict, CodeFormat], dict[str, str]] = lambda fields, codes: {}
    # fields a new record must carry
    required: tuple[str, ...] = ()
    # fields that never change once set (except by HQ where noted in hq/)
    immutable: tuple[str, ...] = ()
    # derived local columns (search keys), recomputed after every merge
    derive: Callable[[dict], dict] = lambda record: {}
    derived_columns: tuple[str, ...] = ()
    # the fields ``derive`` reads (an edit of none of them leaves the search keys); () = any
    derived_from: tuple[str, ...] = ()
    normalize: Callable[[dict], dict] = lambda fields: fields
    # columns indexed for full-text search (SQLite FTS5, prefix indexes)
    fts: tuple[str, ...] = ()
    # plain indexes on the local table
    indexes: tuple[tuple[str, ...], ...] = ()


def text_checks(fields: dict, limits: dict[str, int]) -> dict[str, str]:
    errors = {}
    for name, limit in limits.items():
        if name in fields:
            value = fields[name]
            if not isinstance(value, str):
                errors[name] = "must be text"
            elif len(value) > limit:
                errors[name] = f"is too long (max {limit} characters)"
            elif "\x00" in value:  # never typed by a person; and PostgreSQL's text cannot hold it
                errors[name] = "must not contain a NUL character"
    return errors


def check_unknown(fields: dict, allowed, what: str, errors: dict) -> None:
    """Every field of a change that the record type does not have, named."""
    for name in sorted(set(fields) - set(allowed)):
        errors[name] = f"is not a {what} field"


def check_customer_id(fields: dict, errors: dict) -> None:
    """A non-empty ``customer_id`` must look like one (a UUID)."""
    value = fields.get("customer_id")
    if value and "customer_id" not in errors and not UUID_RE.match(value):
        errors["customer_id"] = "must be a customer id"


def check_json_list(fields: dict, name: str, what: str, errors: dict) -> None:
    """A field holding a JSON list (a sale's lines, a summary's purchases)."""
    if name in fields and name not in errors:
        try:
            value = json.loads(fields[name])
        except ValueError:
            value = None
        if not isinstance(value, list):
            errors[name] = f"must be a JSON list of {what}"


def check_bools(fields: dict, names, errors: dict) -> None:
    for name in names:
        if name in fields and not isinstance(fields[name], bool):
            errors[name] = "must be true or false"


@dataclass
class ValidationError(Exception):
    """Field errors of a write a person asked for; shown next to each field."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self):
        return "; ".join(f"{name} {message}" for name, message in sorted(self.errors.items()))
