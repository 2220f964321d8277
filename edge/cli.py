"""`lanehub edge ...`: run a store's edge service; look at and edit its replica."""

from __future__ import annotations

import json

import click

from edge.config import load_config
from edge.db import EdgeDatabase, NotReady
from edge.service import EdgeService
from edge.web.app import create_app
from lanehub.cli.addresses import address_commands
from lanehub.cli.shared import config_option, customer_commands, fail_on_config_errors, print_list, sales_commands
from lanehub.domain.model import display_name
from lanehub.domain.search import search_customers
from lanehub.runtime.backup import Site, backup_commands
from lanehub.runtime.process import run_until_signalled, setup_logging
from lanehub.web.app import WebService


def open_db(config_path) -> EdgeDatabase:
    with fail_on_config_errors():
        config = load_config(config_path)
    return EdgeDatabase.from_config(config)


@click.group()
def edge():
    """Edge: a store's replica, its HQ link and its lanes."""


@edge.command()
@config_option("edge.toml")
def run(config_path):
    """Run the edge service and the store admin page ([web] port; 0: no page)."""
    with fail_on_config_errors():
        config = load_config(config_path)
        setup_logging(config["log"]["level"])
        service = EdgeService(config).start()
        web = WebService(service, create_app(config, hq_changes=service.hq_changes, till=service.till), config["web"]["host"],
                         config["web"]["port"]).start()
    run_until_signalled(web)


@edge.command()
@config_option("edge.toml")
def status(config_path):
    """The replica's sync state: last applied seq, outbox depth, codes left."""
    db = open_db(config_path)
    click.echo(json.dumps({
        "store": db.store, "ready": db.ready, "last_seq": db.last_seq, "pending_up": db.pending_up(),
        "codes_left": db.codes_left(), "customers": db.replica.count("customer"),
        "rejections": len(db.rejections()),
    }, indent=2))


@edge.command()
@config_option("edge.toml")
def rejections(config_path):
    """Local changes HQ refused, with the reason."""
    print_list((f"{row['rejected_at']} {row['entity']} {row['key']}: {row['reason']}"
                for row in open_db(config_path).rejections()), empty="no rejected changes")


@edge.group()
def customers():
    """Customers in this store's replica (writes go to HQ through the outbox)."""


customer_commands(customers, "edge.toml", open_db, refusals=(NotReady,))
address_commands(customers, "edge.toml", open_db)
sales_commands(edge, "edge.toml", open_db)


def backup_site(config_path):
    with fail_on_config_errors():
        config = load_config(config_path)
    return config["store"]["db"], Site("edge", config["store"]["id"])


backup_commands(edge, "edge.toml", backup_site)


@customers.command("search")
@click.argument("query")
@config_option("edge.toml")
@click.option("--limit", default=20, show_default=True)
def customers_search(query, config_path, limit):
    """Search as a lane does: name, code, phone, e-mail, postcode or card."""
    print_list((f"{r['code']:<18} {display_name(r):<32} {r['email']:<30} {r['phone']}"
                for r in search_customers(open_db(config_path).conn, query, limit)), empty="no customers found")
