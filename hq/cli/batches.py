"""`lanehub hq batch ...`: new customers from a CSV, or one change to many
customers, reviewed row by row and then executed (hq/batches/writes.py)."""

from __future__ import annotations

from contextlib import contextmanager

import click

from hq.batches.writes import ACTION_NAMES, KIND_NAMES, STATUSES, BatchError, Batches, plural, read_rows
from hq.cli.common import open_db
from lanehub.cli.shared import by_option, config_option, print_list, validation_exit
from lanehub.domain.entity import PAYMENT_STATUSES, ValidationError
from lanehub.runtime.text_files import UploadEncodingError


def batches_for(config_path, by: str = "") -> Batches:
    return Batches(open_db(config_path), by)


@contextmanager
def refusals():
    """A refused verb ends the command with its reason: field errors one per line, others on one line."""
    try:
        yield
    except ValidationError as exc:
        validation_exit(exc)
    except (BatchError, UploadEncodingError) as exc:  # a file in an encoding we cannot read: one line, its name first
        raise click.ClickException(str(exc))


def assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    """field=value arguments as a dict (value may be empty: it clears the field)."""
    fields = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.ClickException(f"{pair!r} is not field=value")
        fields[name.strip()] = value
    return fields


@click.group()
def batch():
    """Batches: new customers from a CSV, or one change to many customers; reviewed, then executed."""


@batch.command("new-customers")
@click.argument("csv_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--description", default="", help="What the batch is for (shown in the list)")
@config_option("hq.toml")
@by_option
def new_customers(csv_file, description, config_path, by):
    """Start a new-customers batch, loading CSV_FILE if given; prints its id and review."""
    batches = batches_for(config_path, by)
    with refusals():
        rows = read_rows("new_customers", csv_file, batches.conn) if csv_file else []  # a bad file starts no batch
        batch_id = batches.new("new_customers", by, description)
        if rows:
            batches.add_rows(batch_id, rows)
    print_review(batches, batch_id)


@batch.command("customer-updates")
@click.argument("codes", nargs=-1)
@click.option("--set-rate", "rate", metavar="CODE", help="Give the customers this rate ('-' for none)")
@click.option("--set-payment-status", "payment_status", metavar="STATUS", help=f"Set it: {', '.join(PAYMENT_STATUSES)}")
@click.option("--deactivate", is_flag=True, help="Deactivate the customers")
@click.option("--file", "code_file", type=click.Path(exists=True, dir_okay=False),
              help="Customer codes: one per line, or a CSV with a 'code' column")
@click.option("--description", default="", help="What the batch is for (shown in the list)")
@config_option("hq.toml")
@by_option
def customer_updates(codes, rate, payment_status, deactivate, code_file, description, config_path, by):
    """Start a batch that makes one change to the customers CODES (and/or --file); prints its id and review."""
    chosen = [(action, value) for action, value, given in (
        ("set_rate", rate, rate is not None), ("set_payment_status", payment_status, payment_status is not None),
        ("deactivate", "", deactivate)) if given]
    if len(chosen) != 1:
        raise click.ClickException("give exactly one of --set-rate, --set-payment-status, --deactivate")
    batches = batches_for(config_path, by)
    with refusals():
        rows = [{"code": code} for code in codes] + (read_rows("customer_updates", code_file, batches.conn) if code_file else [])
        batch_id = batches.new("customer_updates", by, description, *chosen[0])
        if rows:
            batches.add_rows(batch_id, rows)
    print_review(batches, batch_id)


@batch.command("list")
@click.option("--status", help=f"Only batches in this state: {', '.join(STATUSES)}")
@config_option("hq.toml")
def list_batches(status, config_path):
    """Batches, newest first, with their state and row counts."""
    with refusals():
        found = batches_for(config_path).list(status)
    lines = []
    for row in found:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(row["counts"].items())) or "no rows"
        lines.append(f"{row['id']:>5}  {KIND_NAMES[row['kind']]:<17} {row['status']:<10} {row['created_at'][:10]}  "
                     f"{row['description'] or '-'}  ({counts})")
    print_list(lines, empty=f"no {status} batches" if status else "no batches")


@batch.command("show")
@click.argument("batch_id", type=int)
@config_option("hq.toml")
def show(batch_id, config_path):
    """Review batch BATCH_ID: every row with its status, errors, duplicate flags and preview,
    then who added, fixed, dropped or kept rows, and when."""
    batches = batches_for(config_path)
    with refusals():
        print_review(batches, batch_id)
        for event in batches.history(batch_id):
            row = f" row {event['row_no']}" if event["row_no"] else ""
            detail = f": {event['detail']}" if event["detail"] else ""
            click.echo(f"  {event['at']} {event['by'] or '?'}: {event['action']}{row}{detail}")


@batch.command("add-row")
@click.argument("batch_id", type=int)
@click.argument("fields", nargs=-1, required=True)
@config_option("hq.toml")
@by_option
def add_row(batch_id, fields, config_path, by):
    """Key in one row: FIELDS as field=value (first_name=Ann ...; code=CUST-00042 for updates)."""
    batches = batches_for(config_path, by)
    with refusals():
        row_no = batches.add_row(batch_id, assignments(fields))
    click.echo(f"batch {batch_id}: row {row_no} added")
    print_review(batches, batch_id)


@batch.command("fix")
@click.argument("batch_id", type=int)
@click.argument("row_no", type=int)
@click.argument("fields", nargs=-1, required=True)
@config_option("hq.toml")
@by_option
def fix(batch_id, row_no, fields, config_path, by):
    """Change fields of row ROW_NO (field=value; field= clears it); the row is checked again."""
    batches = batches_for(config_path, by)
    with refusals():
        batches.fix(batch_id, row_no, assignments(fields))
    print_review(batches, batch_id)


@batch.command("drop")
@click.argument("batch_id", type=int)
@click.argument("row_no", type=int)
@click.option("--undo", is_flag=True, help="Take a dropped row back")
@config_option("hq.toml")
@by_option
def drop(batch_id, row_no, undo, config_path, by):
    """Leave row ROW_NO out of the execution (it stays in the batch)."""
    batches = batches_for(config_path, by)
    with refusals():
        batches.drop(batch_id, row_no, dropped=not undo)
    print_review(batches, batch_id)


@batch.command("keep")
@click.argument("batch_id", type=int)
@click.argument("row_no", type=int)
@click.option("--undo", is_flag=True, help="Take the keep mark back")
@config_option("hq.toml")
@by_option
def keep(batch_id, row_no, undo, config_path, by):
    """Create flagged possible duplicate ROW_NO anyway: it is someone else."""
    batches = batches_for(config_path, by)
    with refusals():
        batches.keep(batch_id, row_no, keep=not undo)
    print_review(batches, batch_id)


@batch.command("execute")
@click.argument("batch_id", type=int)
@config_option("hq.toml")
@by_option
def execute(batch_id, config_path, by):
    """Do every row that is not dropped, all or nothing; the batch is then read-only."""
    batches = batches_for(config_path, by)
    with refusals():
        done = batches.execute(batch_id, by)
    click.echo(f"batch {batch_id} executed: {done['summary']}")
    print_review(batches, batch_id)


@batch.command("cancel")
@click.argument("batch_id", type=int)
@config_option("hq.toml")
@by_option
def cancel(batch_id, config_path, by):
    """Close open batch BATCH_ID without doing anything (it stays, read-only)."""
    with refusals():
        batches_for(config_path, by).cancel(batch_id, by)
    click.echo(f"batch {batch_id} cancelled")


# --- the review table ------------------------------------------------------------------------

def print_review(batches: Batches, batch_id: int) -> None:
    header = batches.get(batch_id)
    rows = batches.review(batch_id)
    title = KIND_NAMES[header["kind"]]
    if header["action"]:
        title += f": {ACTION_NAMES[header['action']]} {header['value'] or ('(none)' if header['action'] == 'set_rate' else '')}"
    click.echo(f"batch {batch_id}  {title.strip()}  [{header['status']}]  {header['description']}".rstrip())
    click.echo(f"  created {header['created_at']} by {header['created_by']}")
    for row in rows:
        click.echo(f"  {row['row_no']:>4}  {row['status']:<9}  {row_line(header, row)}")
        for line in row_notes(row):
            click.echo(f"{'':19}{line}")
    click.echo("  " + footer(header, rows))


def row_line(header: dict, row: dict) -> str:
    fields = row["fields"]
    if header["kind"] == "customer_updates":
        preview = row["preview"]
        line = f"{preview['code']} {preview['name']}: {preview['field']} {preview['current']} -> {preview['new']}" \
            if preview else fields.get("code", "")
    else:
        contact = fields.get("email") or fields.get("mobile") or fields.get("phone") or ""
        line = f"{fields.get('first_name', '')} {fields.get('last_name', '')}".strip() + (f" <{contact}>" if contact else "")
    return line + (f"  => {row['result']}" if row["result"] and header["kind"] == "new_customers" else "")


def row_notes(row: dict) -> list[str]:
    notes = [f"{name}: {message}" for name, message in sorted(row["errors"].items())]
    for flag in row["duplicates"]:
        notes.append(f"possible duplicate of {flag.get('code') or 'row ' + str(flag['row'])} ({flag['reason']})"
                     + (" - kept" if row["keep"] else ""))
    return notes


def footer(header: dict, rows: list[dict]) -> str:
    if header["status"] == "executed":
        return f"executed {header['executed_at']} by {header['executed_by']}: {header['summary']}"
    if header["status"] == "cancelled":
        return f"cancelled {header['cancelled_at']} by {header['cancelled_by']}"
    waiting = [row for row in rows if row["status"] in ("invalid", "duplicate")]
    if not rows:
        return "no rows yet"
    if waiting:
        return f"not ready: {plural(len(waiting), 'row')} to fix, drop or keep"
    return f"ready: lanehub hq batch execute {header['id']}"
