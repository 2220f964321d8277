"""HQ's field declarations, replicated to every store: which fields external
systems own or get exported (field rules, from hq.toml's ``[import.*]``) and
the chain's declared extra customer fields (``lanehub hq extra-fields``)."""

from __future__ import annotations

from hq.db import HQDatabase
from lanehub.domain.extra_fields import EXTRA_FIELD, declaration_key
from lanehub.domain.model import ValidationError
from lanehub.domain.ownership import rule_key
from lanehub.replication.sqlite import transaction


def sync_field_rules(db: HQDatabase, spec, target, by: str) -> int:
    """Make the replicated field rules say what ``spec`` says (None: no import of
    that kind any more, every field is lanehub's); returns how many changed. A field
    no longer owned or exported gets its rule deactivated (rules are never deleted)."""
    if spec is not None and not spec.configured:
        spec = None  # an ad-hoc import (no [import.KIND]) owns nothing
    wanted = {name: {"owner": spec.source, "export": False} for name in spec.owned} if spec else {}
    wanted |= {name: {"owner": "", "export": True} for name in spec.export} if spec else {}
    changed = 0
    with transaction(db.conn):
        rows = db.conn.execute("SELECT id, field FROM field_rules WHERE entity = ? AND active = 1", (target.entity,))
        for key, name in [tuple(r) for r in rows]:
            if name not in wanted:
                db.write("field_rule", key, {"active": False}, by)
                changed += 1
        for name, values in wanted.items():
            key = rule_key(target.entity, name)
            record = db.replica.get("field_rule", key)
            fields = {"entity": target.entity, "field": name, "active": True} | values
            delta = fields if record is None else {k: v for k, v in fields.items() if record[k] != v}
            if delta:
                db.write("field_rule", key, delta, by)
                changed += 1
    return changed


def declare_extra_field(db: HQDatabase, name: str, label: str, by: str, *, active: bool = True) -> dict:
    """Declare (or relabel, or with ``active=False`` withdraw) an extra customer field.
    Withdrawing hides it from pages and refuses new values; values already kept stay."""
    key = declaration_key(name)
    with transaction(db.conn):
        current = db.replica.get("extra_field", key)
        fields = {"name": name, "active": active} | ({"label": label.strip()} if label or current is None else {})
        errors = EXTRA_FIELD.check_fields(fields, db.codes)
        if errors:
            raise ValidationError(errors)
        delta = fields if current is None else {k: v for k, v in fields.items() if current[k] != v}
        if delta:
            db.write("extra_field", key, delta, by)
    declared = db.replica.get("extra_field", key)
    assert declared is not None  # written above, or already there
    return declared
