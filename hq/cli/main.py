"""`lanehub hq ...`: run HQ, register stores, manage customers until the pages exist."""

from __future__ import annotations

import json

import click

from hq.broker_files import broker_files_now
from hq.cli.batches import batch
from hq.cli.catalogue import register as register_catalogue_commands
from hq.cli.common import open_db
from hq.cli.coupons import register as register_coupon_commands
from hq.cli.imports import register as register_import_commands
from hq.cli.users import users as users_group
from hq.config import load_config
from hq.db import HQDatabase
from hq.service import HQService
from hq.web.app import create_app
from lanehub.chain.demo_data import demo_customers
from lanehub.cli.addresses import address_commands
from lanehub.cli.shared import (
    by_option,
    config_option,
    customer_commands,
    fail_on_config_errors,
    limit_options,
    page_limit,
    print_list,
    sales_commands,
    validation_exit,
)
from lanehub.domain.model import ValidationError, display_name
from lanehub.domain.payment_cards import redact
from lanehub.runtime.backup import Site, backup_commands
from lanehub.runtime.process import run_until_signalled, setup_logging
from lanehub.web.app import WebService


@click.group()
def hq():
    """HQ: the authoritative database, the sequencer and the code allocator."""


@hq.command()
@config_option("hq.toml")
def run(config_path):
    """Run the HQ service and the HQ Manager page ([web] port; 0: no page)."""
    with fail_on_config_errors():
        config = load_config(config_path)
        setup_logging(config["log"]["level"])
        service = HQService(config).start()
        web = WebService(service, create_app(config), config["web"]["host"], config["web"]["port"]).start()
    run_until_signalled(web)


# --- stores -------------------------------------------------------------------------

@hq.group()
def store():
    """Register stores and manage their broker credentials."""


@store.command("add")
@click.argument("store_id")
@config_option("hq.toml")
def store_add(store_id, config_path):
    """Register STORE_ID and print its HQ broker credentials (shown once)."""
    with fail_on_config_errors():
        config = load_config(config_path)
        db = HQDatabase.from_config(config)
    try:
        password = db.add_store(store_id)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    try:
        broker_files_now(db, config)
        problem = None
    except (OSError, RuntimeError) as exc:  # the store is registered: show its password anyway
        problem = str(exc)
    broker = config["broker"]
    click.echo(f"Registered store {store_id}. Its HQ broker credentials (shown once, keep them safe):\n")
    click.echo("[hq]")
    click.echo(f'host = "{broker["public_host"] or broker["host"]}"')
    click.echo(f"port = {broker['port']}")
    click.echo(f'username = "{store_id}"')
    click.echo(f'password = "{password}"')
    if not broker["passwd_file"]:
        click.echo("\nNote: [broker] passwd_file is not set in the HQ config, so the broker's password "
                   "file was not updated.", err=True)
    if problem:
        click.echo(f"\nerror: the broker's password/ACL files were not updated: {problem}\n"
                   f"Fix it, then run: lanehub hq store password {store_id}", err=True)
        raise SystemExit(1)


@store.command("password")
@click.argument("store_id")
@config_option("hq.toml")
def store_password(store_id, config_path):
    """Give STORE_ID a new broker password (the old one stops working)."""
    with fail_on_config_errors():
        config = load_config(config_path)
        db = HQDatabase.from_config(config)
    try:
        password = db.reset_store_password(store_id)
    except KeyError:
        raise click.ClickException(f"store {store_id} is not registered")
    broker_files_now(db, config)
    click.echo(f'username = "{store_id}"\npassword = "{password}"')


@store.command("list")
@config_option("hq.toml")
def store_list(config_path):
    """Stores with their link state, outbox depth and last applied seq."""
    db = open_db(config_path)
    head = db.head()
    stores = db.stores()
    if not stores:
        click.echo("no stores registered (add one: lanehub hq store add STORE_ID)")
        return
    click.echo(f"{'store':<10} {'link':<8} {'pending_up':>10} {'last_seq':>9} {'lag':>6}")
    for row in stores:
        click.echo(f"{row['id']:<10} {row['link_state']:<8} {row['pending_up']:>10} {row['last_seq']:>9} {head - row['last_seq']:>6}")


@hq.command()
@config_option("hq.toml")
def rejections(config_path):
    """Changes HQ refused, with their reasons."""
    db = open_db(config_path)
    print_list((f"{row['rejected_at']} {row['store']} {row['entity']} {row['key']}: {row['reason']}"
                for row in db.rejections()), empty="no rejected changes")


@hq.command()
@config_option("hq.toml")
def duplicates(config_path):
    """Possible duplicate customers waiting for review."""
    db = open_db(config_path)
    lines = []
    for row in db.duplicates():
        a, b = db.replica.get("customer", row["a"]), db.replica.get("customer", row["b"])
        lines.append(f"{a['code']} {display_name(a)}  <->  {b['code']} {display_name(b)}  ({row['reason']})")
    print_list(lines, empty="no possible duplicates to review")


# --- customers --------------------------------------------------------------------------

@hq.group()
def customers():
    """Add, edit, deactivate and look up customers at HQ."""


customer_commands(customers, "hq.toml", open_db)
address_commands(customers, "hq.toml", open_db)
sales_commands(hq, "hq.toml", open_db)


@customers.command("list")
@config_option("hq.toml")
@click.option("--deactivated", "include_inactive", is_flag=True, help="Include deactivated customers.")
@limit_options(50)
@click.option("--json", "as_json", is_flag=True)
def customers_list(config_path, include_inactive, limit, show_all, as_json):
    """List customers by code (the first 50 unless --limit or --all)."""
    db = open_db(config_path)
    where = "" if include_inactive else "WHERE active = 1"
    rows = db.conn.execute(f"SELECT id FROM customers {where} ORDER BY code LIMIT ?",
                           (page_limit(limit, show_all),)).fetchall()
    records = [db.replica.get("customer", row[0]) for row in rows]
    more = db.conn.execute(f"SELECT count(*) FROM customers {where}").fetchone()[0] - len(records)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    lines = []
    for r in records:
        flag = "" if r["active"] else "  (deactivated)"
        origin = r["origin_store"] or "HQ"
        lines.append(f"{r['code']:<18} {display_name(r):<32} {r['email']:<30} {origin}{flag}")
    print_list(lines, empty="no customers" if include_inactive else "no active customers", more=more)


@customers.command("load-demo")
@click.argument("count", type=int, default=300)
@config_option("hq.toml")
def customers_load_demo(count, config_path):
    """Create COUNT demo customers (names, phones, e-mails) at HQ."""
    db = open_db(config_path)
    for fields in demo_customers(count):
        db.create_customer(fields, "demo")
    click.echo(f"created {count} demo customers")


register_catalogue_commands(hq)
register_coupon_commands(hq)
register_import_commands(hq)
hq.add_command(users_group)
hq.add_command(batch)


def backup_site(config_path):
    with fail_on_config_errors():
        config = load_config(config_path)
    return config["hq"]["db"], Site("hq")


backup_commands(hq, "hq.toml", backup_site)


@customers.command("add-card")
@click.argument("ref")
@click.argument("number")
@click.option("--kind", type=click.Choice(["customer", "loyalty"]), default="customer", show_default=True)
@config_option("hq.toml")
@by_option
def customers_add_card(ref, number, kind, config_path, by):
    """Give customer REF the card NUMBER (a card belongs to one customer only; a
    payment card number is refused, shown masked: lanehub.domain.payment_cards)."""
    db = open_db(config_path)
    record = db.find_customer(ref)
    if record is None:
        raise click.ClickException(f"no customer {redact(ref)}")  # REF may be a card number typed in the wrong place
    try:
        card = db.add_card(record["id"], number, kind, by)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"card {card['number']} ({card['kind']}) -> {record['code']}")


@hq.command("broker-files")
@config_option("hq.toml")
def broker_files(config_path):
    """Write the HQ broker's password and ACL files (HQ's user and every registered store) and reload it."""
    with fail_on_config_errors():
        config = load_config(config_path)
    db = HQDatabase.from_config(config)
    if not config["broker"]["passwd_file"] or not config["broker"]["acl_file"]:
        raise click.ClickException("set [broker] passwd_file and acl_file in the HQ config first")
    try:
        broker_files_now(db, config)
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc))
    click.echo(f"wrote {config['broker']['passwd_file']} and {config['broker']['acl_file']}")
