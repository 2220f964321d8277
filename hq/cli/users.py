"""`lanehub hq users ...`: who may use the HQ Manager and the store pages."""

from __future__ import annotations

import click

from hq.cli.common import open_db
from hq.users import HQUsers, parse_roles
from lanehub.cli.shared import by_option, config_option, print_list, validation_exit
from lanehub.domain.model import ValidationError
from lanehub.domain.users import BUILTIN_ROLES, PERMISSIONS


def users_for(config_path) -> HQUsers:
    return HQUsers(open_db(config_path))


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        # open_file("-") is the same text stdin get_text_stream gave (deprecated in click 8.5, typed as object).
        return click.open_file("-").readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def users():
    """Users and roles (replicated to every store, so store admins can log in offline)."""


@users.command("add")
@click.argument("username")
@click.option("--role", "roles", required=True, help=f"Comma-separated roles ({', '.join(BUILTIN_ROLES)} or custom).")
@click.option("--name", default="", help="The person's name.")
@click.option("--store", default="", help="Only at this store (a store user cannot log in at HQ).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts, Ansible).")
@config_option("hq.toml")
@by_option
def users_add(username, roles, name, store, password_stdin, config_path, by):
    """Add user USERNAME; the password is asked for (or read from stdin) and stored hashed."""
    try:
        record = users_for(config_path).add(username, read_password(password_stdin), parse_roles(roles), by,
                                            name=name, store=store)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"user {record['username']}: roles {record['roles']}{' at ' + record['store'] if record['store'] else ''}")


@users.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True)
@config_option("hq.toml")
@by_option
def users_password(username, password_stdin, config_path, by):
    """Set USERNAME's password."""
    try:
        users_for(config_path).update(username, by, password=read_password(password_stdin))
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"user {username}: password changed")


@users.command("edit")
@click.argument("username")
@click.option("--role", "roles", default=None, help="Replace the roles (comma-separated).")
@click.option("--name", default=None)
@click.option("--deactivate/--reactivate", "deactivate", default=None, help="Lock the user out, or let them in again.")
@config_option("hq.toml")
@by_option
def users_edit(username, roles, name, deactivate, config_path, by):
    """Change USERNAME's roles, name, or whether they may log in."""
    try:
        record = users_for(config_path).update(username, by, roles=parse_roles(roles) if roles is not None else None,
                                               name=name, active=None if deactivate is None else not deactivate)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"user {record['username']}: roles {record['roles']}, {'active' if record['active'] else 'deactivated'}")


@users.command("list")
@config_option("hq.toml")
def users_list(config_path):
    """Users with their roles and store."""
    print_list((f"{u['username']:<20} {u['roles']:<30} {u['store'] or 'all stores':<10} "
                f"{'' if u['active'] else '(deactivated)'}" for u in users_for(config_path).list()),
               empty="no users (add one: lanehub hq users add USERNAME --role admin)")


@users.command("add-role")
@click.argument("name")
@click.option("--permissions", required=True, help=f"Comma-separated: {', '.join(PERMISSIONS)}.")
@config_option("hq.toml")
@by_option
def users_add_role(name, permissions, config_path, by):
    """Create (or redefine) the custom role NAME."""
    try:
        record = users_for(config_path).add_role(name, parse_roles(permissions), by)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(f"role {record['name']}: {record['permissions']}")


@users.command("token")
@click.argument("username")
@config_option("hq.toml")
@by_option
def users_token(username, config_path, by):
    """Give USERNAME a new API token for /api/v1/ (printed once; the old one stops working)."""
    try:
        token = users_for(config_path).new_token(username, by)
    except ValidationError as exc:
        validation_exit(exc)
    click.echo(token)
