"""Adding, preferring and removing a customer's addresses, the same at HQ and
in a store (the record type: lanehub.domain.addresses)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lanehub.domain.addresses import ADDRESS, ADDRESS_FIELDS
from lanehub.domain.codes import CodeFormat
from lanehub.domain.entity import ValidationError
from lanehub.protocol.change import new_id
from lanehub.replication.sqlite import transaction

if TYPE_CHECKING:  # the site database's module imports the domain model
    from lanehub.replication.site import SiteDatabase


def add_address(db: SiteDatabase, customer_id: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
    """A new address for the customer through ``db`` (HQ's or a store's). A
    preferred one makes the customer's other preferred address of its kind not so."""
    spec = ADDRESS
    values = spec.normalize({name: value for name, value in fields.items() if name in ADDRESS_FIELDS}
                            | {"customer_id": customer_id, "active": True})
    errors = spec.check_fields(values, db.codes or CodeFormat())
    if not any(str(values.get(line, "")).strip() for line in ("street", "city", "postcode")):
        errors.setdefault("street", "give at least a street, a city or a postcode")
    if errors:
        raise ValidationError(errors)
    if db.replica.get("customer", customer_id) is None:
        raise ValidationError({"customer_id": "no such customer"})
    key = new_id()
    with transaction(db.conn):
        if values.get("preferred"):
            _unprefer(db, customer_id, values.get("kind", spec.defaults["kind"]), by)
        db.write("address", key, values, by)
    record = db.replica.get("address", key)
    assert record is not None  # just written
    return record


def prefer_address(db: SiteDatabase, address_id: str, by: str) -> dict[str, Any]:
    """Make an address the preferred one of its kind."""
    record = _active(db, address_id)
    with transaction(db.conn):
        _unprefer(db, record["customer_id"], record["kind"], by)
        db.write("address", address_id, {"preferred": True}, by)
    return _active(db, address_id)


def remove_address(db: SiteDatabase, address_id: str, by: str) -> dict[str, Any]:
    """Deactivate an address (kept, so a late edit of it from another site still merges)."""
    record = _active(db, address_id)
    with transaction(db.conn):
        db.write("address", address_id, {"active": False, "preferred": False}, by)
    return record


def _active(db: SiteDatabase, address_id: str) -> dict[str, Any]:
    record = db.replica.get("address", address_id)
    if record is None or not record["active"]:
        raise ValidationError({"address": "no such address"})
    return record


def _unprefer(db: SiteDatabase, customer_id: str, kind: str, by: str) -> None:
    for (other,) in db.conn.execute("SELECT id FROM addresses WHERE customer_id = ? AND kind = ? AND preferred = 1 "
                                    "AND active = 1", (customer_id, kind)).fetchall():
        db.write("address", other, {"preferred": False}, by)
