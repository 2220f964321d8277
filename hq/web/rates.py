"""HQ Manager: rates (headers, lines), specific prices, and the price check,
which uses the lanes' own pricing function (``lanehub.domain.pricing.unit_price``)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from hq.catalogue import HQCatalogue
from lanehub.domain.model import ValidationError
from lanehub.domain.ownership import owned_fields
from lanehub.web.app import requires


def rates_blueprint() -> Blueprint:
    bp = Blueprint("rates", __name__, url_prefix="/rates")

    @bp.route("/", methods=["GET"])
    @requires("rates.view")
    def index():
        catalogue = HQCatalogue(g.db)
        check, check_error, asked = None, {}, {}
        if request.args.get("sku"):
            asked = {k: request.args.get(k, "").strip() for k in ("sku", "customer", "store", "day")}
            try:
                day = date.fromisoformat(asked["day"]) if asked["day"] else date.today()
            except ValueError:
                check_error = {"day": "must be a date YYYY-MM-DD"}
            else:
                try:
                    check = catalogue.price_check(asked["sku"], asked["customer"], asked["store"], day)
                except ValidationError as exc:
                    check_error = exc.errors
        return render_template("rates/index.html", rates=catalogue.rates(), check=check, check_error=check_error,
                               asked=asked, values={}, errors={})

    @bp.route("/", methods=["POST"])
    @requires("rates.edit")
    def create():
        catalogue = HQCatalogue(g.db)
        values = {k: request.form.get(k, "").strip() for k in ("code", "name", "start", "end")}
        errors = {}
        if not values["code"]:
            errors["code"] = "is required"
        elif catalogue.rate(values["code"]):
            errors["code"] = f"rate {values['code'].upper()} already exists"
        if not errors:
            try:
                record = catalogue.put_rate(values["code"], {"name": values["name"], "start": values["start"] or None,
                                                             "end": values["end"]}, g.user["username"])
            except ValidationError as exc:
                errors = exc.errors
            else:
                flash(f"Rate {record['code']} created.")
                return redirect(url_for("rates.detail", code=record["code"]))
        return render_template("rates/index.html", rates=catalogue.rates(), check=None, check_error={}, asked={},
                               values=values, errors=errors), 422

    @bp.route("/<code>", methods=["GET", "POST"])
    @requires("rates.view")
    def detail(code):
        catalogue = HQCatalogue(g.db)
        rate = catalogue.rate(code)
        if rate is None:
            abort(404)
        values, errors = {}, {}
        if request.method == "POST":
            if "rates.edit" not in g.permissions:
                abort(403)
            action = request.form.get("action")
            try:
                if action == "header":
                    # Fields an external system owns are shown, not posted (a forged one is refused).
                    values = {k: request.form.get(k, "").strip() for k in ("name", "start", "end", "status")
                              if k in request.form}
                    catalogue.put_rate(code, values, g.user["username"])
                    flash(f"Rate {rate['code']} saved.")
                elif action == "line":
                    values = {k: request.form.get(k, "").strip() for k in ("sku", "price", "discount_pct")}
                    catalogue.set_rate_line(code, values["sku"], values["price"] or "0", values["discount_pct"] or "0",
                                            g.user["username"], active=request.form.get("remove") != "1")
                    flash(f"Line {values['sku']} saved.")
                else:
                    abort(400)
            except ValidationError as exc:
                errors = exc.errors
            else:
                return redirect(url_for("rates.detail", code=rate["code"]))
        return render_template("rates/detail.html", rate=catalogue.rate(code), lines=catalogue.rate_lines(code),
                               values=values, errors=errors, owned=owned_fields(g.db.conn, "rate", rate)), \
            (422 if errors else 200)

    return bp
