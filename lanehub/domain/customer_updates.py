"""The one way a person's edit of a customer is written, at HQ and at a store.

Owned fields (an external system's, ``lanehub.domain.ownership``) and a rate that does not
exist (``lanehub.domain.references``) are refused, declared
extra values (``lanehub.domain.extra_fields``) are written as their own records, and the
customer's ``updated_at``/``updated_by`` move when anything changed. The caller
holds the transaction; ``db`` is HQ's or a store's database (both have
``conn``, ``replica`` and ``_write``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lanehub.domain.extra_fields import (
    PREFIX,
    checked_extras,
    with_extras,
    write_extras,
)
from lanehub.domain.ownership import owned_fields, refuse_owned
from lanehub.domain.references import refuse_unknown_rate

if TYPE_CHECKING:  # the protocol's module imports the replica, which imports the domain model
    from lanehub.replication.site import SiteDatabase


def check_extra(db: SiteDatabase, extra: dict[str, Any] | None) -> dict[str, str]:
    return checked_extras(db.conn, extra) if extra else {}


def write_customer_update(db: SiteDatabase, current: dict[str, Any], fields: dict[str, Any], extra: dict[str, str], by: str,
                          stamp: str, only_changed: bool = False) -> bool:
    """Write every field given, changed or not; True when the customer's own fields changed.

    A field set to the value this site already shows is still written with a new
    stamp: the edit is acknowledged, so it must win over an older edit made
    elsewhere that has not arrived yet (last writer wins). An owned field given
    unchanged is left alone (it is the external system's, not this edit's).
    ``only_changed``: a whole form was posted, so a field equal to the record was
    not touched by the person and is not written (it would undo a newer edit of
    that field from elsewhere)."""
    record = with_extras(db.conn, current) if extra else current
    refuse_owned(db.conn, "customer", record, fields | {PREFIX + name: value for name, value in extra.items()})
    changed = {k: v for k, v in fields.items() if current.get(k) != v}
    if "rate" in changed:  # a rate kept as it was is not checked: a customer from before stays editable
        refuse_unknown_rate(db.conn, changed)
    owned = owned_fields(db.conn, "customer", current)
    written = {k: v for k, v in fields.items() if k in changed or not (only_changed or k in owned)}
    # Likewise for extra values: an owned one given unchanged is left alone.
    extra = {n: v for n, v in extra.items() if not (PREFIX + n in owned and record.get(PREFIX + n) == v)}
    changed_extra = write_extras(db, current, extra, by, only_changed=only_changed) if extra else {}
    if written or changed_extra:
        db.write("customer", current["id"], written | {"updated_at": stamp, "updated_by": by}, by)
    return bool(changed)
