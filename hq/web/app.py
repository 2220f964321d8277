"""The HQ Manager: ``create_app(config)``; a blueprint per area."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, jsonify, redirect, render_template, url_for

from hq.audit import change_history
from hq.db import HQDatabase
from hq.web.admin import products_blueprint, users_blueprint
from hq.web.batches import batches_blueprint
from hq.web.fields import fields_blueprint
from hq.web.imports import imports_blueprint
from hq.web.rates import rates_blueprint
from hq.web.stores import stores_blueprint
from lanehub.web.api import Api, customer_api
from lanehub.web.app import health_blueprint, make_app, requires, web_secret
from lanehub.web.customers import customers_blueprint

TEMPLATES = Path(__file__).resolve().parent / "templates"  # this site's pages; the shared ones are lanehub/web's

LINKS = {"hq_broker": True}  # /healthz: HQ without its broker serves no store: 503


def create_app(config, open_db=None, links=None):
    """``links()``: the service's broker links for /healthz (``WebService`` passes
    the running service's; without it /healthz calls them unknown)."""
    db = HQDatabase.from_config(config)  # brings the schema up to date, once
    try:
        secret = web_secret(db)
    finally:
        db.close()
    # Each request opens its own connection (requests run on threads of their own)
    # on the schema made current above.
    open_db = open_db or (lambda: HQDatabase.from_config(config, migrations=False))
    app = make_app(__name__, site="hq", open_db=open_db, secret_key=secret, templates=TEMPLATES,
                   secure_cookies=config["web"]["secure_cookies"], title="lanehub HQ Manager")
    app.extensions["lanehub"]["config"] = config
    app.extensions["lanehub"]["links"] = links
    app.register_blueprint(health_blueprint(LINKS, lambda db: {"last_seq": db.head()}))
    app.register_blueprint(customers_blueprint(audit=customer_audit))
    app.register_blueprint(stores_blueprint())
    app.register_blueprint(duplicates_blueprint())
    app.register_blueprint(rates_blueprint())
    app.register_blueprint(hq_api().bp)
    app.register_blueprint(gdpr_blueprint())
    app.register_blueprint(users_blueprint())
    app.register_blueprint(products_blueprint())
    app.register_blueprint(fields_blueprint())
    app.register_blueprint(imports_blueprint())
    app.register_blueprint(batches_blueprint())
    app.add_url_rule("/", "home", requires("customers.view")(lambda: redirect(url_for("customers.index"))))
    return app


def hq_api() -> Api:
    api = Api("lanehub HQ Manager API")
    customer_api(api)

    @api.route("/stores", "GET", "stores.manage", "Stores: link state, last contact, outbox depth, lag")
    def stores():
        head = g.db.head()
        return jsonify({"head": head, "stores": [
            {k: row[k] for k in ("id", "link_state", "last_contact", "pending_up", "last_seq")} | {"lag": head - row["last_seq"]}
            for row in g.db.stores()]})

    return api


def customer_audit(db, record: dict) -> list[dict]:
    return change_history(db, "customer", record["id"])


def duplicates_blueprint() -> Blueprint:
    bp = Blueprint("duplicates", __name__, url_prefix="/duplicates")

    @bp.route("/")
    @requires("customers.view")
    def index():
        pairs = [row | {"left": g.db.replica.get("customer", row["a"]), "right": g.db.replica.get("customer", row["b"])}
                 for row in g.db.duplicates()]
        return render_template("duplicates.html", pairs=pairs)

    @bp.route("/<a>/<b>", methods=["GET", "POST"])
    @requires("customers.edit")
    def review(a, b):
        from flask import abort, flash, request

        from hq.merge import dismiss_duplicate, merge_customers
        from lanehub.domain.model import ValidationError

        left, right = g.db.replica.get("customer", a), g.db.replica.get("customer", b)
        if left is None or right is None:
            abort(404)
        error = None
        if request.method == "POST":
            if request.form.get("action") == "dismiss":
                dismiss_duplicate(g.db, a, b)
                flash("Marked as not a duplicate.")
                return redirect(url_for("duplicates.index"))
            keep = request.form.get("survivor")
            try:
                survivor = merge_customers(g.db, keep, b if keep == a else a, g.user["username"])
            except ValidationError as exc:
                error = str(exc)
            else:
                flash(f"Merged into {survivor['code']}; the other code still finds this customer.")
                return redirect(url_for("customers.detail", ref=survivor["id"]))
        fields = ["code", "first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city", "postcode",
                  "origin_store", "created_at", "payment_status", "rate"]
        return render_template("duplicate_pair.html", left=left, right=right, fields=fields, error=error)

    return bp


def gdpr_blueprint() -> Blueprint:
    from flask import Response, abort, flash, request

    from hq.gdpr import ERASED_NAME, erase_customer, export_customer

    bp = Blueprint("gdpr", __name__, url_prefix="/gdpr")

    @bp.route("/<ref>/export")
    @requires("customers.edit")
    def export(ref):
        record = g.db.find_customer(ref)
        if record is None:
            abort(404)
        import json

        body = json.dumps(export_customer(g.db, record["id"]), indent=2, ensure_ascii=False, default=str)
        return Response(body, mimetype="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{record["code"]}.json"'})

    @bp.route("/<ref>/erase", methods=["POST"])
    @requires("customers.edit")
    def erase(ref):
        record = g.db.find_customer(ref)
        if record is None:
            abort(404)
        if request.form.get("confirm") != record["code"]:
            flash(f"Not erased: type the customer's code ({record['code']}) to confirm.")
            return redirect(url_for("customers.detail", ref=record["id"]))
        erase_customer(g.db, record["id"], g.user["username"])
        flash(f"Customer {record['code']} erased in every store: name shown as {ERASED_NAME}; code, sales and "
              "consent history kept.")
        return redirect(url_for("customers.detail", ref=record["id"]))

    return bp
