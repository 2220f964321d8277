"""HQ Manager: users and roles (users.manage), products and the CSV import
with a preview of what would change (rates.edit)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from hq.catalogue import HQCatalogue
from hq.imports.engine import ImportAborted, import_file
from hq.users import HQUsers
from lanehub.domain.model import ValidationError
from lanehub.domain.users import BUILTIN_ROLES, PERMISSIONS
from lanehub.web.app import renew_session, requires, saved_upload


def users_blueprint() -> Blueprint:
    bp = Blueprint("users", __name__, url_prefix="/users")

    def page(values=None, errors=None, status=200):
        users = HQUsers(g.db)
        roles = [dict(r) for r in g.db.conn.execute("SELECT name, permissions FROM roles ORDER BY name")]
        return render_template("users.html", users=users.list(), builtin=BUILTIN_ROLES, roles=roles,
                               permissions=PERMISSIONS, stores=g.db.store_ids(), values=values or {},
                               errors=errors or {}), status

    @bp.route("/")
    @requires("users.manage")
    def index():
        return page()

    @bp.route("/", methods=["POST"])
    @requires("users.manage")
    def create():
        values = {k: request.form.get(k, "").strip() for k in ("username", "name", "store")}
        values["roles"] = request.form.getlist("roles")
        try:
            HQUsers(g.db).add(values["username"], request.form.get("password", ""), values["roles"],
                              g.user["username"], name=values["name"], store=values["store"])
        except ValidationError as exc:
            return page(values, exc.errors, 422)
        flash(f"User {values['username']} added.")
        return redirect(url_for("users.index"))

    @bp.route("/<username>", methods=["POST"])
    @requires("users.manage")
    def update(username):
        users = HQUsers(g.db)
        try:
            if request.form.get("action") == "toggle":
                record = users.get(username)
                if record is None:
                    raise ValidationError({"username": f"no user {username}"})
                if record["username"] == g.user["username"]:
                    raise ValidationError({"username": "you cannot lock yourself out"})
                users.update(username, g.user["username"], active=not record["active"])
            elif request.form.get("action") == "roles":
                users.update(username, g.user["username"], roles=request.form.getlist("roles"))
            elif request.form.get("action") == "password":
                users.update(username, g.user["username"], password=request.form.get("password", ""))
            if request.form.get("action") in ("roles", "password") and username.strip().lower() == g.user["username"]:
                renew_session(g.db, g.user["username"])  # your change ends your other sessions, not this one
        except ValidationError as exc:
            flash("Not saved: " + str(exc))
        else:
            flash(f"User {username} saved.")
        return redirect(url_for("users.index"))

    @bp.route("/roles", methods=["POST"])
    @requires("users.manage")
    def add_role():
        try:
            HQUsers(g.db).add_role(request.form.get("name", "").strip(), request.form.getlist("permissions"),
                                   g.user["username"])
        except ValidationError as exc:
            return page({"role": request.form.get("name", "")}, {"role_" + k: v for k, v in exc.errors.items()}, 422)
        flash("Role saved.")
        return redirect(url_for("users.index"))

    return bp


def products_blueprint() -> Blueprint:
    bp = Blueprint("products", __name__, url_prefix="/products")

    @bp.route("/")
    @requires("rates.view")
    def index():
        q = request.args.get("q", "").strip()
        rows = g.db.conn.execute(
            "SELECT sku, description, brand, size, retail_price, tax_rate, active FROM products "
            "WHERE (? = '' OR sku LIKE ? OR description LIKE ?) ORDER BY sku LIMIT 200",
            (q, f"{q}%", f"%{q}%")).fetchall()
        return render_template("products.html", products=rows, q=q, preview=None, errors=[])

    @bp.route("/<sku>", methods=["GET", "POST"])
    @requires("rates.view")
    def detail(sku):
        from flask import abort

        catalogue = HQCatalogue(g.db)
        product = catalogue.product(sku)
        if product is None:
            abort(404)
        values, errors = {}, {}
        if request.method == "POST":
            if "rates.edit" not in g.permissions:
                abort(403)
            values = {k: request.form.get(k, "").strip() for k in ("price", "customer", "store", "start", "end")}
            try:
                catalogue.set_specific_price(sku, values["price"], g.user["username"], customer=values["customer"],
                                             store=values["store"], start=values["start"], end=values["end"],
                                             active=request.form.get("remove") != "1")
            except ValidationError as exc:
                errors = exc.errors
            else:
                flash("Specific price saved.")
                return redirect(url_for("products.detail", sku=sku))
        return render_template("product.html", product=product, barcodes=catalogue.barcodes(product["id"]),
                               specifics=catalogue.specific_prices(sku), values=values, errors=errors), \
            (422 if errors else 200)

    @bp.route("/import", methods=["POST"])
    @requires("rates.edit")
    def import_csv():
        """Upload: a preview (dry run) first; the same file again with confirm=1 imports it."""
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash("Choose a CSV file first.")
            return redirect(url_for("products.index"))
        confirm = request.form.get("confirm") == "1"
        with saved_upload(upload, "products.csv") as path:
            try:
                result = import_file(g.db, "products", path, g.user["username"], dry_run=not confirm,
                                     config=current_app.extensions["lanehub"]["config"])
            except ImportAborted as exc:
                errors = [(where, errs) for where, _, errs in exc.plan.invalid] if exc.plan and exc.plan.invalid \
                    else [("", {"file": str(exc)})]
                return render_template("products.html", products=[], q="", preview=None, errors=errors), 422
        if confirm:
            flash(result.summary())
            return redirect(url_for("products.index"))
        return render_template("products.html", products=[], q="", preview=result, errors=[])

    return bp
