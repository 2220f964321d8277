"""Importers (Rattail's shape): normalize → key → diff → create/update/deactivate.

One engine for every kind (customers, products, rates) and every source (CSV
files, SQL databases by SQLAlchemy URL). ``plan_import`` reads the whole
source and works out every change without writing; ``run_import`` checks the
caps, then (unless dry-run) carries out exactly that plan in one transaction,
each write an ordinary HQ change with a ``seq``, so it reaches every store.
Nothing is deleted: a record missing from the source is deactivated, and only
when asked. An import only writes the fields the source owns (``owned``);
mapped fields it does not own seed new records and are left alone afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hq.fields import sync_field_rules
from hq.imports.sources import CsvSource, SourceError, SourceRow, SqlSource
from hq.imports.targets import TARGETS, Target
from lanehub.domain.model import ValidationError
from lanehub.domain.payment_cards import payment_card_errors, redact
from lanehub.replication.sqlite import transaction
from lanehub.runtime.config import ConfigError

Progress = Callable[[int], None]
Source = CsvSource | SqlSource


class ImportAborted(Exception):
    """The import stopped before writing anything (a cap, invalid rows, a bad source)."""

    def __init__(self, message: str, plan: "ImportPlan | None" = None):
        super().__init__(message)
        self.plan = plan


@dataclass(frozen=True)
class ImportSpec:
    """``[import.NAME]`` of hq.toml, checked against the target's fields."""

    kind: str  # customers | products | rates
    source: str  # the external system's name ("pos"): pages say "comes from pos"
    columns: dict[str, str]  # source column -> lanehub field; empty: the columns are named like the fields
    owned: tuple[str, ...]  # fields the source owns: updated by imports, read-only in lanehub
    export: tuple[str, ...]  # lanehub-owned fields whose changes are written back for the source
    query: str = ""  # SQL sources: the SELECT (default: SELECT * FROM <kind>)
    deactivate_missing: bool = False
    export_to: str = ""  # a directory (CSV drop) or a SQLAlchemy URL
    export_table: str = "lanehub_exports"
    export_interval: float = 60.0  # seconds between the HQ service's exports
    key: str = ""  # the lanehub field records are matched by ("" : the target's default)
    # From an [import.KIND] section: the source owns its fields (read-only in lanehub).
    # An ad-hoc CSV without one updates the columns it has and owns nothing.
    configured: bool = True

    @classmethod
    def from_config(cls, config, kind: str, target: Target) -> "ImportSpec":
        values = config.get("import", {}).get(kind)
        where = f"{getattr(config, 'path', 'hq.toml')}: [import.{kind}]"
        configured = values is not None
        if values is None:
            values = {"source": "csv", "columns": {}, "owned": [], "export": [], "query": "", "deactivate_missing": False,
                      "export_to": "", "export_table": "lanehub_exports", "export_interval": 60.0, "key": ""}
        key = values["key"] or target.key_field
        if key not in (target.keys or (target.key_field,)):
            raise ConfigError(f"{where} key: {key!r} is not a key for {target.entity} records "
                              f"({', '.join(target.keys or (target.key_field,))})")
        for column, name in values["columns"].items():
            if name.startswith("extra.") and name not in target.importable:
                raise ConfigError(f"{where} columns: {column} -> {name!r} is not a declared extra field "
                                  f"(lanehub hq extra-fields add {name[len('extra.'):]} LABEL)")
            if name not in target.importable:
                raise ConfigError(f"{where} columns: {column} -> {name!r} is not an importable {target.entity} field "
                                  f"({', '.join(target.importable)})")
        mapped = set(values["columns"].values()) or set(target.importable)
        owned = tuple(values["owned"]) or tuple(sorted(mapped - {key, "external_id"} - set(target.lanehub_own)))
        for name in owned:
            if name in target.lanehub_own:
                raise ConfigError(f"{where} owned: {name} stays lanehub's own (edited in lanehub, never imported)")
            if name not in target.importable or name in (key, "external_id"):
                raise ConfigError(f"{where} owned: {name!r} is not an importable {target.entity} field")
        for name in values["export"]:
            if name in owned or name not in target.importable or name in (key, "external_id"):
                raise ConfigError(f"{where} export: {name!r} must be a {target.entity} field lanehub owns")
        if values["columns"] and key not in values["columns"].values():
            raise ConfigError(f"{where} columns: no column maps to the key field {key}")
        return cls(kind, values["source"], dict(values["columns"]), owned, tuple(values["export"]), values["query"],
                   values["deactivate_missing"], values["export_to"], values["export_table"], values["export_interval"],
                   key, configured)

    def map_row(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.columns:
            return dict(row)
        return {name: row.get(column, "") for column, name in self.columns.items()}

    def check_columns(self, columns: Iterable[str], target: Target) -> None:
        """The source must carry every mapped column (and no unknown one when unmapped)."""
        columns = set(columns)
        if self.columns:
            missing = sorted(set(self.columns) - columns)
            if missing:
                raise ImportAborted(f"the source has no column(s) {', '.join(missing)}")
            return
        unknown = sorted(columns - set(target.importable))
        if unknown:
            raise ImportAborted(f"unknown column(s) {', '.join(unknown)} (map them with [import.{self.kind}] columns)")
        if self.key not in columns:
            raise ImportAborted(f"the source has no {self.key} column (the key)")


@dataclass(frozen=True)
class RecordChange:
    action: str  # create | update | deactivate
    key: str  # the source's key value
    record_id: str  # lanehub's id ("" for a create)
    fields: dict[str, tuple[Any, Any]]  # field -> (lanehub's value, the source's value)

    def describe(self) -> str:
        diff = "; ".join(f"{name}: {_show(old)} -> {_show(new)}" for name, (old, new) in self.fields.items())
        return f"{self.action} {self.key}" + (f": {diff}" if diff else "")


def _show(value: Any) -> str:
    if value is True or value is False:
        return "yes" if value else "no"
    return repr(value) if value not in (None, "") else "''"


@dataclass
class ImportPlan:
    source: str
    kind: str
    changes: list[RecordChange] = field(default_factory=list)
    unchanged: int = 0
    invalid: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (where, key, errors)
    rows: int = 0

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> str:
        return (f"{self.source} -> lanehub: added {self.count('create')}; updated {self.count('update')}; "
                f"deactivated {self.count('deactivate')}")


@dataclass(frozen=True)
class Caps:
    """Abort (nothing written) when a run would make more changes than expected."""

    create: int | None = None
    update: int | None = None
    deactivate: int | None = None

    def exceeded(self, plan: ImportPlan) -> list[str]:
        out = []
        for action, cap in (("create", self.create), ("update", self.update), ("deactivate", self.deactivate)):
            if cap is not None and plan.count(action) > cap:
                out.append(f"would {action} {plan.count(action)} record(s), more than --max-{action} {cap}")
        return out


def plan_import(target: Target, spec: ImportSpec, rows: Iterator[SourceRow], *, deactivate_missing: bool,
                progress: Progress | None = None) -> ImportPlan:
    """Every change the source asks for, without writing anything."""
    plan = ImportPlan(spec.source, spec.kind)
    current = target.current(spec.key, spec.owned)
    seen: dict[str, str] = {}
    for where, raw in rows:
        plan.rows += 1
        if progress:
            progress(1)
        extra = raw.pop("__extra__", None)
        mapped = spec.map_row(raw)
        key = target.key_of(mapped, spec.key)
        try:
            # A payment card in any column of a customer (a SQL number too): the row is
            # refused, masked; its key still counts as present, so its record is not
            # deactivated. Not for products: an EAN may pass Luhn and start with 2-6.
            refused = payment_card_errors({k: str(v) for k, v in mapped.items() if v is not None}) \
                if target.entity == "customer" else {}
            if refused:
                if key:
                    seen.setdefault(key, where)
                key = redact(key)
                raise ValidationError(refused)
            if extra is not None:
                raise ValidationError({"row": f"has {len(extra)} more cell(s) than the header"})
            if not key:
                raise ValidationError({spec.key: "is required (the key)"})
            if key in seen:
                raise ValidationError({spec.key: f"{key} appears twice in the source (also {seen[key]})"})
            seen[key] = where
            record = current.get(key)
            if record is not None:
                # Only what the source owns is read for an existing record: a bad value
                # in a column that merely seeds new records must not block the import.
                mapped = {k: v for k, v in mapped.items() if k in spec.owned or k in (spec.key, "external_id")}
            fields = target.normalize(mapped, spec.key)
            if record is None:
                target.check_new(fields)
                plan.changes.append(RecordChange("create", key, "", {n: (None, v) for n, v in fields.items()
                                                                      if v not in ("", None)}))
                continue
            diff = target.diff(record, fields, spec.owned)
        except ValidationError as exc:
            plan.invalid.append((where, key, exc.errors))
            continue
        if diff:
            plan.changes.append(RecordChange("update", key, record["id"], diff))
        else:
            plan.unchanged += 1
    if deactivate_missing:
        for key, record in current.items():
            if key not in seen and target.is_active(record):
                plan.changes.append(RecordChange("deactivate", key, record["id"], target.deactivation(record)))
    return plan


def run_import(target: Target, spec: ImportSpec, source: Source, by: str, *, dry_run: bool = False,
               caps: Caps = Caps(), skip_invalid: bool = False, deactivate_missing: bool | None = None,
               progress: Progress | None = None) -> ImportPlan:
    """Plan, check, and (unless ``dry_run``) write the plan in one transaction."""
    plan = checked_plan(target, spec, source, caps=caps, skip_invalid=skip_invalid,
                        deactivate_missing=deactivate_missing, progress=progress)
    if not dry_run:
        write_plan(target, plan, by)
    return plan


def checked_plan(target: Target, spec: ImportSpec, source: Source, *, caps: Caps = Caps(), skip_invalid: bool = False,
                 deactivate_missing: bool | None = None, progress: Progress | None = None) -> ImportPlan:
    """The plan, or ``ImportAborted`` (an unreadable source, invalid rows, a cap exceeded)."""
    if deactivate_missing is None:
        deactivate_missing = spec.deactivate_missing
    try:
        spec.check_columns(source.columns(), target)
        plan = plan_import(target, spec, source.rows(), deactivate_missing=deactivate_missing, progress=progress)
    except SourceError as exc:
        raise ImportAborted(f"cannot read the source: {exc}") from None
    if plan.invalid and not skip_invalid:
        raise ImportAborted(f"{len(plan.invalid)} invalid row(s); nothing imported (fix them, or --skip-invalid)", plan)
    over = caps.exceeded(plan)
    if over:
        raise ImportAborted("; ".join(over) + "; nothing imported", plan)
    return plan


def write_plan(target: Target, plan: ImportPlan, by: str, progress: Progress | None = None) -> None:
    """Every change of ``plan``, in one transaction."""
    if not plan.changes:
        return
    with transaction(target.conn):
        for change in plan.changes:
            target.apply(change, by)
            if progress:
                progress(1)


def import_file(db, kind: str, path, by: str, *, dry_run: bool = False, config=None, caps: Caps = Caps(),
                skip_invalid: bool = False, deactivate_missing: bool = False) -> ImportPlan:
    """An operator's CSV (an upload on the Imports or products page, ``lanehub hq
    products import``): the same engine, all or nothing, with ``[import.KIND]`` when
    configured; a real run brings the field rules up to date, as ``lanehub hq import`` does."""
    target = TARGETS[kind](db)
    spec = ImportSpec.from_config(config or {}, kind, target)
    plan = run_import(target, spec, CsvSource(Path(path)), by, dry_run=dry_run, caps=caps, skip_invalid=skip_invalid,
                      deactivate_missing=deactivate_missing)
    if not dry_run:
        sync_field_rules(db, spec, target, by)
    return plan
