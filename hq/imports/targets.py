"""What importers write into: customers, products, rates.

Each target says how to key, normalize, diff, create, update and deactivate
its records; the engine (``hq/imports/engine.py``) is the same for all. Writes go
through ``HQDatabase.write`` (customers) or ``HQCatalogue.upsert``
(catalogue): ordinary HQ changes with a ``seq``, replicated to every store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from typing import Any

from hq.catalogue import HQCatalogue
from hq.db import HQDatabase
from hq.duplicates import flag_duplicates
from hq.gdpr import ERASED_NAME
from lanehub.domain.address_columns import (
    ADDRESS_COLUMNS,
    ADDRESS_PREFIX,
    checked_address_columns,
    current_address_columns,
    split_address_columns,
    write_address_columns,
)
from lanehub.domain.catalogue import barcode_key, product_key, rate_key
from lanehub.domain.entity import FALSE_WORDS, TRUE_WORDS
from lanehub.domain.extra_fields import PREFIX, checked_extras, declared, split_extras, write_extras
from lanehub.domain.model import CUSTOMER_EDITABLE, ENTITIES, ValidationError, normalize_customer
from lanehub.domain.references import refuse_unknown_rate
from lanehub.protocol.hlc import now_iso


def text(value: Any) -> str:
    """A source value as text: SQL gives numbers and NULLs, CSV gives strings."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    word = text(value).lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationError({name: "must be yes or no"})


class Target(ABC):
    entity: str
    key_field: str  # the default key
    keys: tuple[str, ...] = ()  # the fields an import may key by (default: key_field only)
    importable: tuple[str, ...]
    bools: tuple[str, ...] = ()
    # Fields lanehub keeps as its own: never owned by an import (they may seed a new record).
    lanehub_own: tuple[str, ...] = ()
    # Columns the diff needs besides the key and the owned fields (records are read
    # slim: a million customers' whole rows would not fit a small HQ's memory).
    always: tuple[str, ...] = ("active",)

    def __init__(self, db: HQDatabase):
        self.db = db
        self.conn = db.conn

    def key_of(self, mapped: dict[str, Any], key: str) -> str:
        return text(mapped.get(key))

    def current(self, key: str, owned: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """lanehub's records that the source's keys can match, by key value: the
        columns the diff reads (id, key, ``always``, the owned fields)."""
        return {self.key_of(record, key): record for record in self._slim_rows(key, owned)}

    def _slim_rows(self, key: str, owned: tuple[str, ...], where: str = "") -> list[dict[str, Any]]:
        spec = ENTITIES[self.entity]
        columns = list(dict.fromkeys(["id", key, *self.always, *(n for n in owned if n in spec.fields)]))
        rows = self.conn.execute(f"SELECT {', '.join(f'[{c}]' for c in columns)} FROM [{spec.table}] {where} ORDER BY rid")
        return [{c: (bool(v) if c in spec.bools else ("" if v is None else v)) for c, v in zip(columns, row)} for row in rows]

    def normalize(self, mapped: dict[str, Any], key: str) -> dict[str, Any]:
        errors = {name: "is not a field here" for name in mapped if name not in self.importable}
        if errors:
            raise ValidationError(errors)
        fields: dict[str, Any] = {}
        for name, value in mapped.items():
            if name in self.bools:
                if text(value) == "":
                    continue
                try:
                    fields[name] = flag(value, name)
                except ValidationError as exc:
                    errors |= exc.errors
            else:
                fields[name] = text(value)
        spec = ENTITIES[self.entity]
        fields = spec.normalize(fields)
        errors |= spec.check_fields(fields, self.db.codes)
        if errors:
            raise ValidationError(errors)
        return fields

    def check_new(self, fields: dict[str, Any]) -> None:
        missing = {name: "is required" for name in ENTITIES[self.entity].required
                   if name in self.importable and not str(fields.get(name, "")).strip()}
        if missing:
            raise ValidationError(missing)

    def diff(self, record: dict[str, Any], fields: dict[str, Any], owned: tuple[str, ...]) -> dict[str, tuple]:
        return {name: (record.get(name), value) for name, value in fields.items()
                if name in owned and record.get(name) != value}

    def is_active(self, record: dict[str, Any]) -> bool:
        return bool(record.get("active"))

    def deactivation(self, record: dict[str, Any]) -> dict[str, tuple]:
        return {"active": (True, False)}

    def apply(self, change, by: str) -> None:
        new = {name: value for name, (_, value) in change.fields.items()}
        if change.action == "create":
            self.create(new, by)
        else:
            self.update(change.record_id, new, by)

    @abstractmethod
    def create(self, fields: dict[str, Any], by: str) -> None:
        """Write a new record (inside the engine's transaction)."""

    @abstractmethod
    def update(self, record_id: str, fields: dict[str, Any], by: str) -> None:
        """Write the changed fields of an existing record."""


class CustomerTarget(Target):
    """Customers keyed by the external system's number (``external_id``), or by
    tax id or e-mail to link customers lanehub already has on a first import;
    new ones get a permanent lanehub code at once."""

    entity = "customer"
    key_field = "external_id"
    keys = ("external_id", "tax_id", "email")
    always = ("external_id", "active", "first_name")
    bools = ("no_paper", "active")
    lanehub_own = ("notes", "rate")

    def __init__(self, db: HQDatabase):
        super().__init__(db)
        # Declared extra fields import as extra.NAME, and may be owned like any field;
        # address.KIND.LINE columns are the preferred address of each kind (lanehub.domain.address_columns).
        self.importable = ("external_id", *CUSTOMER_EDITABLE, "active", *(PREFIX + n for n in declared(db.conn)),
                           *ADDRESS_COLUMNS)

    def key_of(self, mapped: dict[str, Any], key: str) -> str:
        value = text(mapped.get(key))
        if key == "tax_id":  # 'B-1234 567' and 'b1234567' are one company
            return "".join(ch for ch in value.upper() if ch.isalnum())
        return value.casefold() if key == "email" else value

    def current(self, key: str, owned: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        # Merged-away duplicates too: their key is known (a new record would bring the duplicate back).
        records = {record["id"]: record for record in self._slim_rows(key, owned, f"WHERE coalesce([{key}], '') != ''")}
        extras = [name[len(PREFIX):] for name in owned if name.startswith(PREFIX)]
        if extras:
            rows = self.conn.execute(f"SELECT customer_id, name, value FROM customer_extras WHERE name IN "
                                     f"({', '.join('?' * len(extras))})", extras)
            for customer_id, name, value in rows:
                if customer_id in records:
                    records[customer_id][PREFIX + name] = value or ""
        for customer_id, values in current_address_columns(self.conn, owned).items():
            if customer_id in records:
                records[customer_id] |= values
        out: dict[str, dict[str, Any]] = {}
        for record in records.values():  # the oldest record of a key wins; a later one is a duplicate to merge
            out.setdefault(self.key_of(record, key), record)
        return out

    def normalize(self, mapped: dict[str, Any], key: str) -> dict[str, Any]:
        addresses = checked_address_columns(mapped)  # empty cells left out: an import never blanks an address
        fields, extra = split_extras(split_address_columns(mapped)[0])
        if key != "external_id" and not text(fields.get("external_id")):
            fields["external_id"] = text(fields.get(key))  # the source's key is the customer's number there
        fields = super().normalize(normalize_customer(fields), key)
        refuse_unknown_rate(self.conn, fields)
        extra = checked_extras(self.conn, {name: text(value) for name, value in extra.items()})
        return fields | {PREFIX + name: value for name, value in extra.items()} | addresses

    def diff(self, record: dict[str, Any], fields: dict[str, Any], owned: tuple[str, ...]) -> dict[str, tuple]:
        def have(name: str) -> Any:  # an extra field or address line not there is empty
            return record.get(name, "" if name.startswith((PREFIX, ADDRESS_PREFIX)) else None)

        changes = {name: (have(name), value) for name, value in fields.items() if name in owned and have(name) != value}
        if not record["external_id"] and fields.get("external_id"):
            # Keyed by tax id or e-mail: a customer lanehub made is linked to the source's record.
            changes["external_id"] = ("", fields["external_id"])
        if changes and record["first_name"] == ERASED_NAME and not record["active"]:
            # Re-importing would bring back what the customer asked lanehub to forget.
            raise ValidationError({"external_id": f"{record['external_id']} was erased in lanehub (GDPR); "
                                                  "erase it in the source too"})
        return changes

    def is_active(self, record: dict[str, Any]) -> bool:
        return bool(record["active"]) and bool(record["external_id"])  # lanehub's own customers are not the source's

    def check_new(self, fields: dict[str, Any]) -> None:
        missing = {name: "is required" for name in ("first_name", "last_name") if not fields.get(name)}
        if missing:
            raise ValidationError(missing)

    def create(self, fields: dict[str, Any], by: str) -> None:
        fields, addresses = split_address_columns(fields)
        fields, extra = split_extras(fields)
        key = self.db.insert_customer(fields, by)
        write_extras(self.db, {"id": key}, extra, by)
        write_address_columns(self.db, key, addresses, by)

    def update(self, record_id: str, fields: dict[str, Any], by: str) -> None:
        fields, addresses = split_address_columns(fields)
        fields, extra = split_extras(fields)
        write_extras(self.db, {"id": record_id}, extra, by)
        write_address_columns(self.db, record_id, addresses, by)
        if fields or extra:  # only an address changed: the customer record itself did not
            self.db.write("customer", record_id, fields | {"updated_at": now_iso(), "updated_by": by}, by)
        flag_duplicates(self.conn, record_id)



class CatalogueTarget(Target):
    """Products and rates write through the catalogue's one write path (checks, natural keys)."""

    def __init__(self, db: HQDatabase):
        super().__init__(db)
        self.catalogue = HQCatalogue(db)


class ProductTarget(CatalogueTarget):
    """Products keyed by SKU; ``barcodes`` ('|'-separated) are added, never removed."""

    entity = "product"
    key_field = "sku"
    importable = ("sku", "description", "brand", "size", "retail_price", "tax_rate", "active", "barcodes")
    bools = ("active",)

    def current(self, key: str, owned: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        records = super().current(key, owned)
        if "barcodes" not in owned:
            return records
        codes: dict[str, list[str]] = {}
        for code, product_id in self.conn.execute("SELECT code, product_id FROM barcodes WHERE active = 1 ORDER BY code"):
            codes.setdefault(product_id, []).append(code)
        for record in records.values():
            record["barcodes"] = "|".join(codes.get(record["id"], []))
        return records

    def normalize(self, mapped: dict[str, Any], key: str) -> dict[str, Any]:
        mapped = dict(mapped)
        barcodes = "|".join(c.strip() for c in text(mapped.pop("barcodes", "")).split("|") if c.strip())
        if "tax_rate" in mapped and text(mapped["tax_rate"]) == "":
            mapped.pop("tax_rate")
        fields = super().normalize(mapped, key)
        errors: dict[str, str] = {}
        for code in barcodes.split("|") if barcodes else []:
            for message in ENTITIES["barcode"].check_fields({"code": code}, self.db.codes).values():
                errors["barcodes"] = message  # one message per field: the last one
            owner = self.conn.execute("SELECT p.sku FROM barcodes b JOIN products p ON p.id = b.product_id "
                                      "WHERE b.code = ? AND b.active = 1", (code,)).fetchone()
            if owner and owner[0] != fields.get("sku"):
                errors["barcodes"] = f"barcode {code} already belongs to product {owner[0]}"
        if errors:
            raise ValidationError(errors)
        return fields | ({"barcodes": barcodes} if barcodes else {})

    def check_new(self, fields: dict[str, Any]) -> None:
        missing = {name: "is required" for name in ("description", "retail_price") if not fields.get(name)}
        if missing:
            raise ValidationError(missing)

    def diff(self, record: dict[str, Any], fields: dict[str, Any], owned: tuple[str, ...]) -> dict[str, tuple]:
        out = super().diff(record, {k: v for k, v in fields.items() if k != "barcodes"}, owned)
        have = set(filter(None, record["barcodes"].split("|")))
        new = [c for c in fields.get("barcodes", "").split("|") if c and c not in have]
        if new and "barcodes" in owned:
            out["barcodes"] = (record["barcodes"], "|".join(sorted(have | set(new))))
        return out

    def create(self, fields: dict[str, Any], by: str) -> None:
        self.update(product_key(fields["sku"]), fields, by)

    def update(self, record_id: str, fields: dict[str, Any], by: str) -> None:
        fields = dict(fields)
        barcodes = [c for c in fields.pop("barcodes", "").split("|") if c]
        if fields:
            self.catalogue.upsert("product", record_id, fields, by)
        for code in barcodes:
            self.catalogue.upsert("barcode", barcode_key(code), {"code": code, "product_id": record_id, "active": True}, by)


class RateTarget(CatalogueTarget):
    """Rate headers keyed by code; a rate missing from the source is disabled."""

    entity = "rate"
    key_field = "code"
    always = ("status",)
    importable = ("code", "name", "start", "end", "status")

    def key_of(self, mapped: dict[str, Any], key: str) -> str:
        return text(mapped.get("code")).upper()

    def normalize(self, mapped: dict[str, Any], key: str) -> dict[str, Any]:
        return super().normalize(dict(mapped) | ({"code": self.key_of(mapped, key)} if "code" in mapped else {}), key)

    def check_new(self, fields: dict[str, Any]) -> None:
        pass  # a new rate starts today unless the source says when

    def is_active(self, record: dict[str, Any]) -> bool:
        return record.get("status") == "active"

    def deactivation(self, record: dict[str, Any]) -> dict[str, tuple]:
        return {"status": (record["status"], "disabled")}

    def create(self, fields: dict[str, Any], by: str) -> None:
        fields = {"start": date.today().isoformat(), "status": "active"} | fields
        self.catalogue.upsert("rate", rate_key(fields["code"]), fields, by)

    def update(self, record_id: str, fields: dict[str, Any], by: str) -> None:
        self.catalogue.upsert("rate", record_id, fields, by)


TARGETS: dict[str, type[Target]] = {"customers": CustomerTarget, "products": ProductTarget, "rates": RateTarget}
