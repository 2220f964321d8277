"""`lanehub hq import KIND SOURCE`, `lanehub hq export KIND`, `lanehub hq fields`."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from hq.cli.common import open_db
from hq.config import load_config
from hq.db import HQDatabase
from hq.fields import declare_extra_field, sync_field_rules
from hq.imports.engine import Caps, ImportAborted, ImportPlan, ImportSpec, checked_plan, write_plan
from hq.imports.sources import SourceError, open_source
from hq.imports.targets import TARGETS
from lanehub.cli.shared import by_option, config_option, fail_on_config_errors, print_list, validation_exit
from lanehub.domain.extra_fields import declared
from lanehub.domain.model import ValidationError
from lanehub.domain.ownership import RULE_ENTITIES, field_rules


def register(hq: click.Group) -> None:
    hq.add_command(import_command)
    hq.add_command(export_command)
    hq.add_command(fields)
    hq.add_command(extra_fields)


def _setup(config_path, kind):
    with fail_on_config_errors():
        config = load_config(config_path)
        db = HQDatabase.from_config(config)
        target = TARGETS[kind](db)
        spec = ImportSpec.from_config(config, kind, target)
    return db, target, spec


@click.command("import")
@click.argument("kind", type=click.Choice(sorted(TARGETS)))
@click.argument("source")
@click.option("--query", default="", help="SQL sources: the SELECT to read (default: [import.KIND] query, "
                                          "else SELECT * FROM KIND).")
@click.option("--dry-run", is_flag=True, help="Show every change (counts and each record's fields) and write nothing.")
@click.option("--max-create", type=click.IntRange(0), help="Abort, writing nothing, if more records would be added.")
@click.option("--max-update", type=click.IntRange(0), help="Abort, writing nothing, if more records would be updated.")
@click.option("--max-deactivate", type=click.IntRange(0), help="Abort, writing nothing, if more would be deactivated.")
@click.option("--deactivate-missing/--keep-missing", default=None,
              help="Deactivate records the source no longer has (default: [import.KIND] deactivate_missing).")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and list the invalid ones "
                                                   "(default: any invalid row aborts the import).")
@click.option("--progress/--no-progress", default=None, help="A progress bar (default: when stderr is a terminal).")
@click.option("-v", "--verbose", is_flag=True, help="List each record's changes on a real run too.")
@click.option("--by", default="", help="Who the changes are by in the audit trail (default: import:SOURCE-NAME).")
@config_option("hq.toml")
def import_command(kind, source, query, dry_run, max_create, max_update, max_deactivate, deactivate_missing,
                   skip_invalid, progress, verbose, by, config_path):
    """Import KIND (customers, products or rates) from SOURCE: a CSV file or a
    database URL (sqlite:///pos.db, postgresql+psycopg://user@host/db).

    Each row is normalized, keyed ([import.KIND] columns say which source column
    is the key: external_id for customers, or tax_id/email with [import.customers]
    key; sku; code) and compared with lanehub:
    new records are added, changed fields of the fields the source owns are
    updated, and with --deactivate-missing records it no longer has are
    deactivated (never deleted). Running the same import again changes nothing."""
    db, target, spec = _setup(config_path, kind)
    by = by or f"import:{spec.source}"
    try:
        reader = open_source(source, query or spec.query, kind)
    except SourceError as exc:
        db.close()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    show_bar = progress if progress is not None else sys.stderr.isatty()
    options = {"caps": Caps(max_create, max_update, max_deactivate), "skip_invalid": skip_invalid,
               "deactivate_missing": deactivate_missing}
    try:
        with _bar(show_bar, reader.count, f"Reading {kind}") as update:
            plan = checked_plan(target, spec, reader, progress=update, **options)
        if not dry_run:
            with _bar(show_bar and plan.changes, lambda: len(plan.changes), f"Writing {len(plan.changes)} changes") as update:
                write_plan(target, plan, by, progress=update)
            sync_field_rules(db, spec, target, by)
    except SourceError as exc:  # counting the rows for the bar
        click.echo(f"error: cannot read the source: {exc}", err=True)
        sys.exit(1)
    except ImportAborted as exc:
        if exc.plan:
            _report(exc.plan, changes=False)
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        db.close()
    _report(plan, changes=dry_run or verbose)
    click.echo(("dry run: " if dry_run else "") + plan.summary() + f" ({plan.unchanged} unchanged)")


@contextmanager
def _bar(show, length, label: str):
    """A progress bar on stderr, or nothing; yields its update function (or None)."""
    if not show:
        yield None
        return
    with click.progressbar(length=length(), label=label, file=sys.stderr) as bar:
        yield bar.update


def _report(plan: ImportPlan, changes: bool) -> None:
    if changes:
        for change in plan.changes:
            click.echo(change.describe())
    for where, key, errors in plan.invalid:
        for name, message in sorted(errors.items()):
            click.echo(f"invalid: {where}{f' ({key})' if key else ''}: {name} {message}", err=True)


@click.command("export")
@click.argument("kind", type=click.Choice(["customers"]))
@config_option("hq.toml")
def export_command(kind, config_path):
    """Write lanehub's changes of the fields marked `export` in [import.KIND]
    to the external system's drop ([import.KIND] export_to: a directory for CSV
    files or a database URL and export_table). Only changes not yet exported."""
    from hq.imports.export import export_changes

    db, target, spec = _setup(config_path, kind)
    try:
        result = export_changes(db, spec)
    except (SourceError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        db.close()
    click.echo(result)


@click.command()
@click.argument("entity", type=click.Choice(RULE_ENTITIES), required=False)
@config_option("hq.toml")
def fields(entity, config_path):
    """Which fields an external system owns (read-only in lanehub) and which are exported."""
    db = open_db(config_path)
    try:
        for name in [entity] if entity else RULE_ENTITIES:
            for rule in sorted(field_rules(db.conn, name).values(), key=lambda r: r.field):
                what = f"owned by {rule.owner}" if rule.owner else "lanehub's, exported"
                click.echo(f"{name}.{rule.field}: {what}")
    finally:
        db.close()


@click.group("extra-fields")
def extra_fields():
    """The chain's declared extra customer fields (shown and edited on every site)."""


@extra_fields.command("add")
@click.argument("name")
@click.argument("label")
@config_option("hq.toml")
@by_option
def extra_fields_add(name, label, config_path, by):
    """Declare extra field NAME (lower-case, e.g. loyalty_tier) shown as LABEL; an existing one is relabelled."""
    _declare(config_path, name, label, by, True)


@extra_fields.command("remove")
@click.argument("name")
@config_option("hq.toml")
@by_option
def extra_fields_remove(name, config_path, by):
    """Withdraw extra field NAME: hidden from pages, new values refused; kept values stay."""
    _declare(config_path, name, "", by, False)


@extra_fields.command("list")
@config_option("hq.toml")
def extra_fields_list(config_path):
    """Declared extra fields: name and label."""
    db = open_db(config_path)
    try:
        print_list((f"{name}\t{label}" for name, label in declared(db.conn).items()), empty="no extra fields declared")
    finally:
        db.close()


def _declare(config_path, name, label, by, active):
    db = open_db(config_path)
    try:
        record = declare_extra_field(db, name, label, by, active=active)
    except ValidationError as exc:
        validation_exit(exc)
    finally:
        db.close()
    click.echo(f"{record['name']}\t{record['label']}\t{'active' if record['active'] else 'withdrawn'}")
