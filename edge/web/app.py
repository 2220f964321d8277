"""The store admin page: ``create_app(config)``; a blueprint per area."""

from __future__ import annotations

from pathlib import Path

from flask import redirect, url_for

from edge.db import EdgeDatabase, NotReady
from edge.lane.mail import MailSettings
from edge.lane.printers import PrinterRoutes
from edge.lane.settings import LaneSettings
from edge.web.receipts import receipts_blueprint
from edge.web.store import lanes_blueprint, sales_blueprint, settings_blueprint
from edge.web.sync import sync_blueprint
from edge.web.till import till_blueprint
from lanehub.web.api import Api, customer_api
from lanehub.web.app import health_blueprint, make_app, requires, web_secret
from lanehub.web.customers import customers_blueprint

TEMPLATES = Path(__file__).resolve().parent / "templates"  # this site's pages; the shared ones are lanehub/web's


# /healthz: the store broker is required (lanes and devices talk through it); the
# HQ link is not: a store cut off from HQ keeps selling, so it answers 200 "degraded".
LINKS = {"store_broker": True, "hq_broker": False}


def create_app(config, open_db=None, hq_changes=None, links=None, till=None):
    """``hq_changes(customer_id)``: the customer's change history from HQ (the
    running edge service asks over sync/req), None when HQ cannot answer.
    ``links()``: the service's broker links for /healthz (``WebService`` passes
    the running service's; without it /healthz calls them unknown). ``till``: the
    service's edge.lane.till.TillLink, which the cashier screens sell through
    (without it they say they cannot sell)."""
    store = config["store"]["id"]
    db = EdgeDatabase.from_config(config)  # brings the schema up to date, once
    try:
        secret = web_secret(db)
    finally:
        db.close()
    # Each request opens its own connection (requests run on threads of their own)
    # on the schema made current above.
    open_db = open_db or (lambda: EdgeDatabase.from_config(config, migrations=False))
    app = make_app(__name__, site="store", open_db=open_db, secret_key=secret, templates=TEMPLATES, store=store,
                   secure_cookies=config["web"]["secure_cookies"], title=f"lanehub store {store}")
    audit = (lambda db, record: hq_changes(record["id"])) if hq_changes else None
    app.register_blueprint(customers_blueprint(marker=sync_marker, refusals=(NotReady,), audit=audit,
                                               audit_source="HQ's change log"))
    app.extensions["lanehub"]["links"] = links
    app.register_blueprint(health_blueprint(LINKS, health_facts, figures=("last_seq", "outbox")))
    app.register_blueprint(sync_blueprint())
    settings = LaneSettings.from_config(config)  # the store page overrides some of them
    app.register_blueprint(lanes_blueprint(PrinterRoutes.from_config(config), settings.receipt_store))
    app.register_blueprint(receipts_blueprint(MailSettings.from_config(config).configured))
    app.register_blueprint(till_blueprint(till, tuple(config.get("lane", {}))))
    app.register_blueprint(sales_blueprint())
    app.register_blueprint(settings_blueprint(settings))
    api = Api(f"lanehub store {store} API")
    customer_api(api, refusals=(NotReady,))
    app.register_blueprint(api.bp)
    app.add_url_rule("/", "home", requires("customers.view")(lambda: redirect(url_for("customers.index"))))
    return app


def health_facts(db: EdgeDatabase) -> dict:
    """/healthz's figures: the last applied seq and the changes HQ has not acknowledged yet."""
    facts = {"last_seq": db.last_seq, "outbox": db.pending_up(), "database": {"ready": db.ready}}
    if not db.ready:
        facts["problems"] = ["the replica is not loaded yet (waiting for HQ's snapshot)"]
    return facts


def sync_marker(db: EdgeDatabase, record: dict) -> str:
    """"not yet confirmed by HQ" while a change of this customer waits in the outbox."""
    waiting = db.conn.execute("SELECT 1 FROM outbox WHERE json_extract(change, '$.entity') = 'customer' "
                              "AND json_extract(change, '$.key') = ? LIMIT 1", (record["id"],)).fetchone()
    return "not yet confirmed by HQ" if waiting else "synced"
