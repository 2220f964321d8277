"""``lanehub hq|edge customers addresses / add-address / prefer-address /
remove-address``: a customer's addresses beyond the main one (D44), the same
verbs at HQ and in a store. An address is named by the first characters of its
id, as ``addresses`` prints them (any unique prefix of four or more)."""

from __future__ import annotations

import click

from lanehub.cli.shared import by_option, config_option, found_customer, print_list, validation_exit
from lanehub.domain.address_edits import add_address, prefer_address, remove_address
from lanehub.domain.addresses import ADDRESS_KINDS, ADDRESS_LINES, addresses_of, one_line
from lanehub.domain.model import ValidationError

SHOWN_ID = 8  # characters of an address id the list prints


def _address_id(db, customer: dict, prefix: str) -> str:
    """The id of the customer's active address whose id starts with ``prefix``."""
    prefix = prefix.strip().lower()
    if len(prefix) < 4:
        raise click.ClickException("give at least the first 4 characters of the address id (as `addresses` prints it)")
    matches = [a["id"] for a in addresses_of(db.conn, customer["id"]) if a["id"].startswith(prefix)]
    if not matches:
        raise click.ClickException(f"{customer['code']} has no address {prefix} (see `addresses {customer['code']}`)")
    if len(matches) > 1:
        raise click.ClickException(f"{prefix} names {len(matches)} addresses of {customer['code']}: give more characters")
    return matches[0]


def _line(address: dict) -> str:
    kind = address["kind"] + (f" ({address['label']})" if address["label"] else "")
    return f"{address['id'][:SHOWN_ID]}  {kind:<24} {address['line']}{'  preferred' if address['preferred'] else ''}"


def address_commands(group: click.Group, default_config: str, open_db) -> None:
    """Register the address verbs on a site's ``customers`` group."""

    @group.command("addresses")
    @click.argument("ref")
    @config_option(default_config)
    def addresses(ref, config_path):
        """List customer REF's addresses: the main one, then each by kind (preferred first)."""
        db = open_db(config_path)
        customer = found_customer(db, ref)
        click.echo(f"{'main':<10}{'':<24} {one_line(customer) or '(none)'}")
        print_list((_line(a) for a in addresses_of(db.conn, customer["id"])), empty="no further addresses")

    @group.command("add-address")
    @click.argument("ref")
    @click.option("--kind", type=click.Choice(ADDRESS_KINDS), default="delivery", show_default=True)
    @click.option("--label", default="", help="A name for it: office, warehouse...")
    @click.option("--street", default="")
    @click.option("--city", default="")
    @click.option("--postcode", default="")
    @click.option("--country", default="")
    @click.option("--preferred", is_flag=True, help="Make it the one of its kind to use (invoices use the preferred billing one).")
    @config_option(default_config)
    @by_option
    def add(ref, kind, label, preferred, config_path, by, **lines):
        """Give customer REF a further address (billing, delivery or other)."""
        db = open_db(config_path)
        customer = found_customer(db, ref)
        fields = {"kind": kind, "label": label, "preferred": preferred} | {n: lines[n] for n in ADDRESS_LINES}
        try:
            click.echo(_line(add_address(db, customer["id"], fields, by) | {"line": one_line(fields)}))
        except ValidationError as exc:
            validation_exit(exc)

    @group.command("prefer-address")
    @click.argument("ref")
    @click.argument("address")
    @config_option(default_config)
    @by_option
    def prefer(ref, address, config_path, by):
        """Make ADDRESS (its id's first characters) customer REF's preferred one of its kind."""
        db = open_db(config_path)
        customer = found_customer(db, ref)
        record = prefer_address(db, _address_id(db, customer, address), by)
        click.echo(_line(record | {"line": one_line(record)}))

    @group.command("remove-address")
    @click.argument("ref")
    @click.argument("address")
    @config_option(default_config)
    @by_option
    def remove(ref, address, config_path, by):
        """Remove ADDRESS from customer REF (kept as history; every site stops offering it)."""
        db = open_db(config_path)
        customer = found_customer(db, ref)
        record = remove_address(db, _address_id(db, customer, address), by)
        click.echo(f"removed {record['id'][:SHOWN_ID]} ({one_line(record)}) from {customer['code']}")
