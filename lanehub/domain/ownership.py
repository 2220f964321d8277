"""Field ownership ("extra data"): which fields an external system owns.

A chain that keeps its POS or CRM as the authority for some customer fields
imports them (``hq/imports/engine.py``); those fields are then read-only in
lanehub's pages, API, lanes and CLI, with a note naming the system, while
lanehub's own fields (notes, rate, consents, cards, household) stay editable.
Rules are an HQ-made replicated entity, so every store knows them offline.
A rule applies to the records that came from the external system: customers
with an ``external_id``; every product and rate (their natural key is the
source's key).
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from lanehub.domain.entity import EntitySpec, ValidationError, check_bools, check_unknown, text_checks

NAMESPACE = uuid.UUID("8c3a5a0e-4d8e-4f4e-9a57-6f1f3b1f0c11")
RULE_ENTITIES = ("customer", "product", "rate")
SOURCE_NAME_HELP = "1-32 letters, digits, '_' or '-'"


def rule_key(entity: str, field_name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{entity}:{field_name}"))


def check_rule_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"entity": 16, "field": 64, "owner": 32})
    check_unknown(fields, FIELD_RULE.fields, "field rule", errors)
    if "entity" in fields and "entity" not in errors and fields["entity"] not in RULE_ENTITIES:
        errors["entity"] = f"must be one of {', '.join(RULE_ENTITIES)}"
    check_bools(fields, ("export", "active"), errors)
    return errors


FIELD_RULE = EntitySpec(
    name="field_rule",
    table="field_rules",
    fields=("entity", "field", "owner", "export", "active"),
    defaults={"entity": "", "field": "", "owner": "", "export": False, "active": True},
    bools=frozenset({"export", "active"}),
    check_fields=check_rule_fields,
    required=("entity", "field"),
    immutable=("entity", "field"),
    indexes=(("entity",),),
)


@dataclass(frozen=True)
class FieldRule:
    entity: str
    field: str
    owner: str  # the external system that owns the field ("" : lanehub owns it)
    export: bool  # changes made in lanehub are written back for the external system


def field_rules(conn: sqlite3.Connection, entity: str) -> dict[str, FieldRule]:
    rows = conn.execute("SELECT field, owner, export FROM field_rules WHERE entity = ? AND active = 1", (entity,))
    return {r[0]: FieldRule(entity, r[0], r[1] or "", bool(r[2])) for r in rows}


def from_source(entity: str, record: dict[str, Any] | None) -> bool:
    """Did this record come from the external system?"""
    if not record:
        return False
    return bool(record.get("external_id")) if entity == "customer" else True


def owned_fields(conn: sqlite3.Connection, entity: str, record: dict[str, Any] | None) -> dict[str, str]:
    """{field: owner} of the fields a person may not change on ``record``."""
    if not from_source(entity, record):
        return {}
    return {name: rule.owner for name, rule in field_rules(conn, entity).items() if rule.owner}


def owned_note(owner: str) -> str:
    return f"comes from {owner}; change it there"


def refuse_owned(conn: sqlite3.Connection, entity: str, record: dict[str, Any] | None, fields: dict[str, Any]) -> None:
    """Raise ``ValidationError`` for every owned field ``fields`` would change."""
    owned = owned_fields(conn, entity, record)
    errors = {name: owned_note(owner) for name, owner in owned.items()
              if name in fields and record is not None and fields[name] != record.get(name)}
    if errors:
        raise ValidationError(errors)
