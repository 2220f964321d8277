"""Shared pieces of the command groups: the -c option and one-line config errors."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Iterable

import click

from lanehub.domain.model import CUSTOMER_EDITABLE, ValidationError
from lanehub.domain.payment_cards import redact
from lanehub.runtime.config import ConfigError


def default_config(name: str) -> str:
    """``name`` in $LANEHUB_CONFIG_DIR when that is set (the boxes' lanehub
    command sets /etc/lanehub), else in the current directory."""
    directory = os.environ.get("LANEHUB_CONFIG_DIR", "")
    return os.path.join(directory, name) if directory else name


def config_option(default: str):
    return click.option(
        "-c", "--config", "config_path", default=lambda: default_config(default), show_default=default,
        type=click.Path(dir_okay=False), help="TOML configuration file ($LANEHUB_CONFIG_DIR/NAME when set)",
    )


@contextmanager
def fail_on_config_errors():
    """A bad config stops the process with one line naming the file and the key."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"lanehub: config error: {exc}", err=True)
        raise SystemExit(2) from None


def print_list(lines: Iterable[str], empty: str = "none", more: int = 0) -> None:
    """Print a list one line each; an empty list says ``empty`` (not nothing), and a
    list cut at its limit says how many more there are and how to see them."""
    printed = 0
    for line in lines:
        click.echo(line)
        printed += 1
    if not printed and not more:
        click.echo(empty)
    if more > 0:
        click.echo(f"... {more} more: use --limit or --all")


def limit_options(default: int):
    """--limit N and --all for a list command; the command gets ``limit`` (None: all)."""
    def decorate(fn):
        fn = click.option("--all", "show_all", is_flag=True, help="List every one (no limit).")(fn)
        return click.option("--limit", default=default, show_default=True, type=click.IntRange(min=1),
                            help="List at most this many.")(fn)
    return decorate


def page_limit(limit: int, show_all: bool) -> int:
    """The SQL LIMIT of a list command: -1 (SQLite's no limit) with --all."""
    return -1 if show_all else limit


by_option = click.option("--by", default="cli", help="Who is making the change (kept in the audit trail)")


def _extra_pairs(ctx, param, values) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE")
        out[name.strip()] = text
    return out


def customer_options(fn):
    fn = click.option("--extra", multiple=True, callback=_extra_pairs, metavar="NAME=VALUE",
                      help="A declared extra field (lanehub hq extra-fields list); repeat for several.")(fn)
    for name in reversed(CUSTOMER_EDITABLE):
        flag = "--" + name.replace("_", "-")
        if name == "no_paper":
            fn = click.option("--no-paper/--paper", "no_paper", default=None, help="E-mail receipts instead of printing")(fn)
        else:
            fn = click.option(flag, name, default=None)(fn)
    return fn


def given_fields(values: dict) -> dict:
    return {k: v for k, v in values.items() if k in CUSTOMER_EDITABLE and v is not None}


def print_customer(record: dict) -> None:
    click.echo(json.dumps(record, indent=2, sort_keys=True))


def validation_exit(exc: ValidationError):
    for name, message in sorted(exc.errors.items()):
        click.echo(f"error: {name} {message}", err=True)
    sys.exit(1)


def found_customer(db, ref: str) -> dict:
    """The customer REF names (id, code or alias), or a one-line error (a card
    number typed as REF is never echoed)."""
    record = db.find_customer(ref)
    if record is None:
        raise click.ClickException(f"no customer {redact(ref)}")
    return record


def customer_commands(group: click.Group, default_config: str, open_db, refusals: tuple = ()) -> None:
    """Register add/edit/deactivate/reactivate/show on ``group``.

    ``open_db(config_path)`` returns a site database with ``create_customer``,
    ``update_customer`` and ``find_customer`` (HQ's and the edge's both do);
    exceptions in ``refusals`` become a one-line error.
    """

    def update(config_path, ref, fields, by, extra=None):
        db = open_db(config_path)
        record = found_customer(db, ref)
        if not fields and not extra:
            raise click.ClickException("nothing to change: give at least one field option")
        try:
            print_customer(db.update_customer(record["id"], fields, by, extra=extra))
        except ValidationError as exc:
            validation_exit(exc)

    @group.command("add")
    @customer_options
    @config_option(default_config)
    @by_option
    def add(config_path, by, extra, **values):
        """Create a customer; it gets its final code at once."""
        db = open_db(config_path)
        try:
            print_customer(db.create_customer(given_fields(values), by, extra=extra))
        except ValidationError as exc:
            validation_exit(exc)
        except refusals as exc:
            raise click.ClickException(str(exc))

    @group.command("edit")
    @click.argument("ref")
    @customer_options
    @config_option(default_config)
    @by_option
    def edit(ref, config_path, by, extra, **values):
        """Change fields of customer REF (id, code or a replaced provisional code)."""
        update(config_path, ref, given_fields(values), by, extra)

    @group.command("deactivate")
    @click.argument("ref")
    @config_option(default_config)
    @by_option
    def deactivate(ref, config_path, by):
        """Hide customer REF from lanes; the record, its code and history stay."""
        update(config_path, ref, {"active": False}, by)

    @group.command("reactivate")
    @click.argument("ref")
    @config_option(default_config)
    @by_option
    def reactivate(ref, config_path, by):
        """Make a deactivated customer REF usable again."""
        update(config_path, ref, {"active": True}, by)

    @group.command("show")
    @click.argument("ref")
    @config_option(default_config)
    def show(ref, config_path):
        """Show customer REF as JSON (with its declared extra fields under "extra")."""
        from lanehub.domain.extra_fields import extras_of

        db = open_db(config_path)
        record = found_customer(db, ref)
        print_customer(record | {"extra": extras_of(db.conn, record["id"])})


def sales_commands(group: click.Group, default_config: str, open_db) -> None:
    """Register `sales track` and `sales history` on ``group`` (HQ's and the edge's)."""
    from lanehub.domain.sales import SaleError, purchase_history, track_sale

    @group.group("sales")
    def sales():
        """Closed sales: track one to a customer, a customer's purchase history."""

    @sales.command("track")
    @click.argument("ticket")
    @click.argument("customer")
    @config_option(default_config)
    @by_option
    def track(ticket, customer, config_path, by):
        """Attach the closed sale TICKET (which has no customer) to CUSTOMER (code or id)."""
        db = open_db(config_path)
        try:
            sale = track_sale(db, ticket, customer, by)
        except SaleError as exc:
            raise click.ClickException(str(exc))
        click.echo(f"sale {sale['ticket']} -> customer {customer}")

    @sales.command("history")
    @click.argument("customer")
    @click.option("--limit", default=20, show_default=True)
    @config_option(default_config)
    def history(customer, limit, config_path):
        """CUSTOMER's purchases across stores (newest first) as JSON."""
        db = open_db(config_path)
        record = db.find_customer(customer)
        if record is None:
            raise click.ClickException(f"no customer {customer}")
        click.echo(json.dumps(purchase_history(db.conn, record["id"], limit), indent=2))
