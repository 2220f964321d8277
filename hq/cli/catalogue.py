"""`lanehub hq products ...`, `lanehub hq rates ...` and `lanehub hq price`:
the catalogue for operators until the HQ Manager pages exist."""

from __future__ import annotations

import json
from datetime import date

import click

from hq.catalogue import HQCatalogue
from hq.cli.common import open_db
from hq.db import HQDatabase
from lanehub.cli.shared import (
    by_option,
    config_option,
    fail_on_config_errors,
    limit_options,
    page_limit,
    print_list,
    validation_exit,
)
from lanehub.domain.model import ValidationError


def catalogue_for(config_path) -> HQCatalogue:
    return HQCatalogue(open_db(config_path))


def register(hq: click.Group) -> None:
    hq.add_command(products)
    hq.add_command(rates)
    hq.add_command(price)


@click.group()
def products():
    """Import and look up products."""


@products.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change and change nothing.")
@config_option("hq.toml")
@by_option
def products_import(csv_file, dry_run, config_path, by):
    """Import products from CSV_FILE (sku, description, brand, size, retail_price,
    tax_rate, active, barcodes separated by '|'). All or nothing: an invalid row
    aborts the import and every row's errors are listed."""
    from hq.config import load_config
    from hq.imports.engine import ImportAborted, import_file

    with fail_on_config_errors():
        config = load_config(config_path)
        db = HQDatabase.from_config(config)
    try:
        result = import_file(db, "products", csv_file, by, dry_run=dry_run, config=config)
    except ImportAborted as exc:
        for where, _, errors in exc.plan.invalid if exc.plan else ():
            for name, message in sorted(errors.items()):
                click.echo(f"error: {where}: {name} {message}", err=True)
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1)
    finally:
        db.close()
    if dry_run:
        for change in result.changes:
            click.echo("would " + change.describe())
        click.echo("dry run: " + result.summary())
    else:
        click.echo(result.summary())


@products.command("show")
@click.argument("sku")
@config_option("hq.toml")
def products_show(sku, config_path):
    """Show product SKU with its barcodes and specific prices as JSON."""
    catalogue = catalogue_for(config_path)
    record = catalogue.product(sku)
    if record is None:
        raise click.ClickException(f"no product {sku}")
    record = record | {"barcodes": catalogue.barcodes(record["id"]), "specific_prices": catalogue.specific_prices(sku)}
    click.echo(json.dumps(record, indent=2, sort_keys=True))


@products.command("list")
@limit_options(50)
@config_option("hq.toml")
def products_list(limit, show_all, config_path):
    """List products by SKU (the first 50 unless --limit or --all)."""
    conn = catalogue_for(config_path).db.conn
    rows = conn.execute("SELECT sku, description, retail_price, active FROM products ORDER BY sku LIMIT ?",
                        (page_limit(limit, show_all),)).fetchall()
    more = conn.execute("SELECT count(*) FROM products").fetchone()[0] - len(rows)
    print_list((f"{row['sku']:<16} {row['description']:<40} {row['retail_price']:>10}"
                f"{'' if row['active'] else '  (inactive)'}" for row in rows),
               empty="no products (import some: lanehub hq products import FILE)", more=more)


@click.group()
def rates():
    """Rates (headers and lines), specific prices and customers' rates."""


def _put_rate(config_path, code, fields, by):
    try:
        record = catalogue_for(config_path).put_rate(code, fields, by)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(json.dumps(record, indent=2, sort_keys=True))


@rates.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--start", default=None, help="First day in force, YYYY-MM-DD (default today).")
@click.option("--end", default=None, help="Last day in force, YYYY-MM-DD (default open).")
@config_option("hq.toml")
@by_option
def rates_add(code, name, start, end, config_path, by):
    """Create rate CODE (stored upper-case)."""
    if catalogue_for(config_path).rate(code):
        raise click.ClickException(f"rate {code.upper()} already exists (use: lanehub hq rates edit)")
    _put_rate(config_path, code, {"name": name, "start": start, "end": end}, by)


@rates.command("edit")
@click.argument("code")
@click.option("--name", default=None)
@click.option("--start", default=None)
@click.option("--end", default=None, help="YYYY-MM-DD, or '' for open-ended.")
@click.option("--status", type=click.Choice(["active", "disabled"]), default=None)
@config_option("hq.toml")
@by_option
def rates_edit(code, name, start, end, status, config_path, by):
    """Change the header of rate CODE."""
    if not catalogue_for(config_path).rate(code):
        raise click.ClickException(f"no rate {code.upper()}")
    _put_rate(config_path, code, {"name": name, "start": start, "end": end, "status": status}, by)


@rates.command("list")
@config_option("hq.toml")
def rates_list(config_path):
    """Rates with their window and status."""
    print_list((f"{r['code']:<12} {r['name']:<30} {r['start']} .. {r['end'] or 'open':<10} {r['status']}"
                for r in catalogue_for(config_path).rates()), empty="no rates")


@rates.command("show")
@click.argument("code")
@config_option("hq.toml")
def rates_show(code, config_path):
    """Rate CODE with its lines, as JSON."""
    catalogue = catalogue_for(config_path)
    record = catalogue.rate(code)
    if record is None:
        raise click.ClickException(f"no rate {code.upper()}")
    click.echo(json.dumps(record | {"lines": catalogue.rate_lines(code)}, indent=2, sort_keys=True))


@rates.command("line")
@click.argument("code")
@click.argument("sku")
@click.option("--price", default="0", show_default=True, help="Line price; 0 means the product's retail price.")
@click.option("--discount", default="0", show_default=True, help="Discount % off the line price.")
@click.option("--remove", is_flag=True, help="Remove the line (it is deactivated, never deleted).")
@config_option("hq.toml")
@by_option
def rates_line(code, sku, price, discount, remove, config_path, by):
    """Set the line of rate CODE for product SKU."""
    try:
        changed = catalogue_for(config_path).set_rate_line(code, sku, price, discount, by, active=not remove)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"rate {code.upper()} line {sku}: " + ("unchanged" if not changed else json.dumps(changed, sort_keys=True)))


@rates.command("assign")
@click.argument("code")
@click.argument("customers", nargs=-1, required=True)
@config_option("hq.toml")
@by_option
def rates_assign(code, customers, config_path, by):
    """Give CUSTOMERS (codes or ids) rate CODE; CODE '-' takes their rate away."""
    catalogue = catalogue_for(config_path)
    for ref in customers:
        try:
            record = catalogue.assign_rate(ref, "" if code == "-" else code, by)
        except ValidationError as exc:
            validation_exit(exc)
        click.echo(f"{record['code']}: rate {record['rate'] or '(none)'}")


@rates.command("specific")
@click.argument("sku")
@click.argument("amount")
@click.option("--customer", default="", help="Only for this customer (code or id).")
@click.option("--store", default="", help="Only in this store.")
@click.option("--start", default="", help="First valid day, YYYY-MM-DD.")
@click.option("--end", default="", help="Last valid day, YYYY-MM-DD.")
@click.option("--remove", is_flag=True, help="Remove this specific price (deactivated, never deleted).")
@config_option("hq.toml")
@by_option
def rates_specific(sku, amount, customer, store, start, end, remove, config_path, by):
    """Set a specific price AMOUNT for product SKU (optionally per customer, store, window)."""
    try:
        changed = catalogue_for(config_path).set_specific_price(
            sku, amount, by, customer=customer, store=store, start=start, end=end, active=not remove)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"specific price {sku}: " + ("unchanged" if not changed else json.dumps(changed, sort_keys=True)))


@click.command()
@click.argument("sku")
@click.option("--customer", default="", help="Customer code or id.")
@click.option("--store", default="", help="Store id.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Day (default today).")
@config_option("hq.toml")
def price(sku, customer, store, day, config_path):
    """Price check: what a lane charges for SKU (barcode or SKU), and why."""
    try:
        result = catalogue_for(config_path).price_check(sku, customer, store, day.date() if day else date.today())
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"{result.unit} ({result.source}; retail {result.retail})")
