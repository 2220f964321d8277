"""The HQ Manager: ``create_app(config)``; a blueprint per area."""

from __future__ import annotations

import time

from flask import Blueprint, g, redirect, render_template, url_for

from core.web import make_app, requires, web_secret
from core.web_customers import customers_blueprint

OFFLINE_AFTER = 15 * 60  # no contact for this long: a store shows as Offline


def create_app(config, open_db=None):
    from .cli import db_for

    open_db = open_db or (lambda: db_for(config))
    db = open_db()
    try:
        secret = web_secret(db)
    finally:
        db.close()
    app = make_app(__name__, site="hq", open_db=open_db, secret_key=secret,
                   secure_cookies=config["web"]["secure_cookies"], title="lanehub HQ Manager")
    app.register_blueprint(customers_blueprint())
    app.register_blueprint(stores_blueprint())
    app.add_url_rule("/", "home", requires("customers.view")(lambda: redirect(url_for("customers.index"))))
    return app


def stores_blueprint() -> Blueprint:
    bp = Blueprint("stores", __name__, url_prefix="/stores")

    @bp.route("/")
    @requires("stores.manage")
    def index():
        head = g.db.head()
        now = time.time()
        stores = []
        for row in g.db.stores():
            if row["last_contact"] is None:
                state = "Pending provisioning"
            elif row["link_state"] == "online" and now - row["last_contact"] < OFFLINE_AFTER:
                state = "Active"
            else:
                state = "Offline"
            stores.append(row | {"state": state, "lag": head - row["last_seq"],
                                 "rejections": len(g.db.rejections(row["id"]))})
        return render_template("stores.html", stores=stores, head=head, now=now)

    return bp
