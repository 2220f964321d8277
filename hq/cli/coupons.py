"""`lanehub hq households ...` and `lanehub hq coupons ...`."""

from __future__ import annotations

import json

import click

from hq.cli.common import open_db
from hq.coupons import HQCoupons
from lanehub.cli.shared import by_option, config_option, print_list, validation_exit
from lanehub.domain.model import ValidationError, display_name


def coupons_for(config_path) -> HQCoupons:
    return HQCoupons(open_db(config_path))


def register(hq: click.Group) -> None:
    hq.add_command(households)
    hq.add_command(coupons)


@click.group()
def households():
    """Households: customers grouped under a head account."""


@households.command("add")
@click.argument("name")
@click.option("--head", required=True, help="The head customer (code or id); joins the household.")
@config_option("hq.toml")
@by_option
def households_add(name, head, config_path, by):
    """Create household NAME headed by a customer."""
    try:
        record = coupons_for(config_path).create_household(name, head, by)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(json.dumps(record, indent=2, sort_keys=True))


@households.command("join")
@click.argument("household")
@click.argument("customers", nargs=-1, required=True)
@config_option("hq.toml")
@by_option
def households_join(household, customers, config_path, by):
    """Put CUSTOMERS into HOUSEHOLD (its id, or the code of any member)."""
    hq = coupons_for(config_path)
    try:
        target = hq.household(household)
        for ref in customers:
            record = hq.set_household(ref, target["id"], by)
            click.echo(f"{record['code']} {display_name(record)} -> {target['name']}")
    except ValidationError as exc:
        validation_exit(exc)


@households.command("leave")
@click.argument("customers", nargs=-1, required=True)
@config_option("hq.toml")
@by_option
def households_leave(customers, config_path, by):
    """Take CUSTOMERS out of their household."""
    hq = coupons_for(config_path)
    try:
        for ref in customers:
            record = hq.set_household(ref, "", by)
            click.echo(f"{record['code']} {display_name(record)}: no household")
    except ValidationError as exc:
        validation_exit(exc)


@households.command("show")
@click.argument("household")
@config_option("hq.toml")
def households_show(household, config_path):
    """A household (by id or a member's code) with its members, as JSON."""
    hq = coupons_for(config_path)
    try:
        record = hq.household(household)
    except ValidationError as exc:
        validation_exit(exc)
    members = [{"code": m["code"], "name": display_name(m), "id": m["id"]} for m in hq.members(record["id"])]
    click.echo(json.dumps(record | {"members": members}, indent=2, sort_keys=True))


@click.group()
def coupons():
    """Coupons for a customer or a household, redeemed once in the whole chain."""


@coupons.command("issue")
@click.option("--customer", default="", help="Issue to this customer (code or id).")
@click.option("--household", default="", help="Issue to this household (id or a member's code).")
@click.option("--amount", default=None, help="Money off, e.g. 5.00.")
@click.option("--percent", default=None, help="Percent off the ticket, e.g. 10.")
@click.option("--code", default="", help="The coupon's code (default: a random CPN-XXXXXXXX).")
@click.option("--start", default="", help="First valid day, YYYY-MM-DD.")
@click.option("--end", default="", help="Last valid day, YYYY-MM-DD.")
@config_option("hq.toml")
@by_option
def coupons_issue(customer, household, amount, percent, code, start, end, config_path, by):
    """Issue a coupon (amount or percent) to a customer or a household."""
    if (amount is None) == (percent is None):
        raise click.UsageError("give exactly one of --amount or --percent")
    kind, value = ("amount", amount) if amount is not None else ("percent", percent)
    try:
        record = coupons_for(config_path).issue(kind, value, by, customer=customer, household=household, code=code,
                                                start=start, end=end)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(json.dumps(record, indent=2, sort_keys=True))


@coupons.command("disable")
@click.argument("code")
@config_option("hq.toml")
@by_option
def coupons_disable(code, config_path, by):
    """Disable coupon CODE everywhere."""
    try:
        record = coupons_for(config_path).disable(code, by)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"coupon {record['code']}: {record['status']}")


@coupons.command("double-uses")
@config_option("hq.toml")
def coupons_double_uses(config_path):
    """Coupons redeemed twice (stores offline with coupon_offline = allow), for review."""
    print_list((f"{row['code']}: ticket {row['ticket']} ({row['store']}) after {row['other_ticket']}  [{row['flagged_at']}]"
                for row in coupons_for(config_path).double_uses()), empty="no coupon redeemed twice")
