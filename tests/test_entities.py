"""Every replicated entity, from the registry (``lanehub.domain.model.ENTITIES``): a valid
record passes its checks, travels as a change message, applies at HQ and at a
store, and survives a snapshot unchanged. A new entity without a sample here
fails the first test."""

from __future__ import annotations

import uuid

import pytest

from lanehub.domain.codes import CodeFormat
from lanehub.domain.model import ENTITIES, STORE_WRITABLE
from lanehub.protocol.change import Change, new_id
from lanehub.protocol.hlc import HybridLogicalClock
from lanehub.replication.replica import Replica
from lanehub.replication.schema import migrate, replica_migrations
from lanehub.replication.sqlite import connect

C = str(uuid.uuid4())  # a customer id the samples point to
P = str(uuid.uuid4())  # a product id

SAMPLES = {
    "customer": {"code": "CUST-00001", "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
                 "country": "ES", "external_id": "4711", "no_paper": True},
    "card": {"number": "CARD-0001", "customer_id": C, "kind": "loyalty"},
    "address": {"customer_id": C, "kind": "billing", "street": "Calle Mayor 1", "city": "Madrid"},
    "purchase_summary": {"customer_id": C, "purchases": '[{"ticket": "S002-L1-9", "store": "S002", "items": []}]'},
    "code_alias": {"alias": "S001-000001", "customer_id": C},
    "product": {"sku": "MILK", "description": "Milk 1L", "retail_price": "1.20", "tax_rate": "4.00"},
    "barcode": {"code": "8410000000011", "product_id": P},
    "rate": {"code": "VIP", "name": "VIP", "start": "2026-01-01"},
    "rate_line": {"rate_id": str(uuid.uuid4()), "product_id": P, "price": "1.00", "discount_pct": "0.00"},
    "specific_price": {"product_id": P, "customer_id": C, "price": "0.99"},
    "sale": {"ticket": "S001-L1-1", "store": "S001", "lane": "L1", "customer_id": C, "closed_at": "2026-11-25T10:00:00+00:00",
             "total": "1.20", "currency": "EUR", "lines": '[{"sku": "MILK", "qty": "1", "unit_price": "1.20"}]'},
    "consent": {"customer_id": C, "channel": "email", "granted": True, "at": "2026-11-25T10:00:00+00:00", "store": "S001"},
    "household": {"name": "Lee family", "head_customer_id": C},
    "coupon": {"code": "CPN-1", "kind": "amount", "value": "5.00", "customer_id": C},
    "coupon_use": {"coupon_id": str(uuid.uuid4()), "ticket": "S001-L1-1", "store": "S001", "at": "2026-11-25T10:00:00+00:00",
                   "mode": "online", "discount": "5.00"},
    "user": {"username": "ann", "password_hash": "scrypt:32768:8:1$x$y", "roles": "cashier", "store": "S001"},
    "role": {"name": "night_shift", "permissions": "customers.view"},
    "field_rule": {"entity": "customer", "field": "city", "owner": "pos", "export": False},
    "extra_field": {"name": "loyalty_tier", "label": "Loyalty tier"},
    "customer_extra": {"customer_id": C, "name": "loyalty_tier", "value": "gold"},
}


def replica(tmp_path, name: str) -> Replica:
    conn = connect(str(tmp_path / f"{name}.db"))
    migrate(conn, replica_migrations)
    return Replica(conn)


def test_every_entity_has_a_sample():
    assert set(SAMPLES) == set(ENTITIES)


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_a_valid_record_passes_its_checks_and_an_unknown_field_does_not(entity):
    spec = ENTITIES[entity]
    fields = spec.normalize(dict(SAMPLES[entity]))
    assert spec.check_fields(fields, CodeFormat()) == {}
    assert all(name in fields for name in spec.required)
    assert "no_such_field" in spec.check_fields({"no_such_field": "x"}, CodeFormat())


@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_a_record_travels_as_a_change_and_survives_a_snapshot(tmp_path, entity):
    spec = ENTITIES[entity]
    hq = replica(tmp_path, "hq")
    key = new_id()
    origin = "S001" if entity in STORE_WRITABLE else "hq"
    change = Change(new_id(), entity, key, origin, HybridLogicalClock().now(), "t",
                    spec.normalize(dict(SAMPLES[entity])))
    hq.apply(Change.from_dict(change.to_dict()))  # the message a store or HQ sends
    record = hq.get(entity, key)
    assert {k: record[k] for k in SAMPLES[entity]} == spec.normalize(dict(SAMPLES[entity]))
    store = replica(tmp_path, "store")
    columns, rows = hq.export_rows(entity)
    store.load_rows(entity, columns, rows)
    assert store.get(entity, key) == record
    assert store.clocks(entity, key) == hq.clocks(entity, key)


@pytest.mark.parametrize("entity", sorted(name for name, spec in ENTITIES.items() if spec.derived_from))
def test_the_search_keys_follow_only_the_fields_they_are_derived_from(entity):
    # Replica._update recomputes them only when an edit names one of derived_from.
    spec = ENTITIES[entity]
    record = dict(spec.defaults) | spec.normalize(dict(SAMPLES[entity]))
    keys = spec.derive(record)
    for name in set(spec.fields) - set(spec.derived_from):
        other = "" if not isinstance(record[name], str) else record[name] + " Xy 12"
        assert spec.derive(record | {name: other}) == keys, f"{entity}'s search keys read {name}"
    assert all(spec.derive(record | {name: "Zq 99 x@y.z"}) != keys for name in spec.derived_from)
