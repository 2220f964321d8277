"""Declared extra customer fields: what a chain keeps beyond lanehub's own fields.

HQ declares a field (``lanehub hq extra-fields add loyalty_tier "Loyalty tier"``);
the declaration replicates, so every page, the API and the CLI offer it. Each
customer's value is its own small record (``customer_extra``, keyed by customer
and name), so two stores editing two different extra fields of one customer
offline never overwrite each other (last writer wins per value, as for
fields). Imports can map a source column to ``extra.NAME`` and may own it.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from lanehub.domain.entity import (
    UUID_RE,
    EntitySpec,
    ValidationError,
    check_bools,
    check_unknown,
    text_checks,
)

if TYPE_CHECKING:  # the protocol's module imports the replica, which imports the domain model
    from lanehub.replication.site import SiteDatabase

NAMESPACE = uuid.UUID("5b0c7f0e-2a43-4d0a-9f57-7c3c2b9d8e21")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_VALUE = 500
PREFIX = "extra."  # how an extra field is named among a customer's fields (imports, ownership rules)


def declaration_key(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"field:{name}"))


def value_key(customer_id: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"value:{customer_id}:{name}"))


def check_declaration_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"name": 32, "label": 80})
    check_unknown(fields, EXTRA_FIELD.fields, "extra field declaration", errors)
    if "name" in fields and "name" not in errors and not NAME_RE.match(fields["name"]):
        errors["name"] = "must be 1-32 lower-case letters, digits or '_', starting with a letter"
    if "label" in fields and "label" not in errors and not fields["label"].strip():
        errors["label"] = "is required"
    check_bools(fields, ("active",), errors)
    return errors


EXTRA_FIELD = EntitySpec(
    name="extra_field",
    table="extra_fields",
    fields=("name", "label", "active"),
    defaults={"name": "", "label": "", "active": True},
    bools=frozenset({"active"}),
    check_fields=check_declaration_fields,
    required=("name", "label"),
    immutable=("name",),
    indexes=(("name",),),
)


def check_value_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"customer_id": 36, "name": 32, "value": MAX_VALUE})
    check_unknown(fields, CUSTOMER_EXTRA.fields, "customer extra", errors)
    if "customer_id" in fields and "customer_id" not in errors and not UUID_RE.match(fields["customer_id"]):
        errors["customer_id"] = "must be a customer id"
    if "name" in fields and "name" not in errors and not NAME_RE.match(fields["name"]):
        errors["name"] = "is not an extra field name"
    return errors


CUSTOMER_EXTRA = EntitySpec(
    name="customer_extra",
    table="customer_extras",
    fields=("customer_id", "name", "value"),
    defaults={"customer_id": "", "name": "", "value": ""},
    check_fields=check_value_fields,
    required=("customer_id", "name"),
    immutable=("customer_id", "name"),
    indexes=(("customer_id",),),
)


def declared(conn: sqlite3.Connection) -> dict[str, str]:
    """{name: label} of the active declarations, in name order."""
    return {r[0]: r[1] for r in conn.execute("SELECT name, label FROM extra_fields WHERE active = 1 ORDER BY name")}


def extras_of(conn: sqlite3.Connection, customer_id: str) -> dict[str, str]:
    return {r[0]: r[1] or "" for r in conn.execute(
        "SELECT name, value FROM customer_extras WHERE customer_id = ? ORDER BY name", (customer_id,))}


def checked_extras(conn: sqlite3.Connection, values: dict[str, Any]) -> dict[str, str]:
    """Normalize and validate extra values a person or an import gives; raises
    ``ValidationError`` with ``extra.NAME`` keys."""
    names = declared(conn)
    out, errors = {}, {}
    for name, value in values.items():
        where = PREFIX + str(name)
        if name not in names:
            errors[where] = "is not a declared extra field"
        elif value is not None and not isinstance(value, str):
            errors[where] = "must be text"
        elif value is not None and len(value.strip()) > MAX_VALUE:
            errors[where] = f"is too long (max {MAX_VALUE} characters)"
        elif value is not None:
            out[name] = " ".join(value.split())
    if errors:
        raise ValidationError(errors)
    return out


def write_extras(db: SiteDatabase, customer: dict[str, Any], values: dict[str, str], by: str,
                 only_changed: bool = True) -> dict[str, str]:
    """Write extra values inside the caller's transaction (``db`` is HQ's or a store's
    database; ``_write`` makes the replicated change) and return those that changed.
    ``only_changed``: skip values equal to the record's (imports, a posted form);
    an edit that sets a value on purpose is written even when it is unchanged, so it
    is stamped and wins over an older edit made elsewhere (last writer wins).
    Values already checked by ``checked_extras``; owned ones were refused by the caller."""
    current = extras_of(db.conn, customer["id"])
    changed = {name: value for name, value in values.items() if current.get(name, "") != value}
    for name, value in (changed if only_changed else values).items():
        key = value_key(customer["id"], name)
        if db.replica.get("customer_extra", key) is None:
            db.write("customer_extra", key, {"customer_id": customer["id"], "name": name, "value": value}, by)
        else:
            db.write("customer_extra", key, {"value": value}, by)
    return changed


def split_extras(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(customer fields, {extra name: value}) of fields where extras are named extra.NAME."""
    plain = {k: v for k, v in fields.items() if not k.startswith(PREFIX)}
    return plain, {k[len(PREFIX):]: v for k, v in fields.items() if k.startswith(PREFIX)}


def with_extras(conn: sqlite3.Connection, record: dict[str, Any]) -> dict[str, Any]:
    """A customer record with its extra values as ``extra.NAME`` keys (owned-field checks, diffs)."""
    return record | {PREFIX + name: value for name, value in extras_of(conn, record["id"]).items()}
