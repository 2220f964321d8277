"""HQ Manager: customer fields. Which fields external systems own or get
exported (hq.toml's [import.*], shown here, changed there) and the chain's
declared extra customer fields (declared, relabelled and withdrawn here)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from hq.fields import declare_extra_field
from lanehub.domain.model import ValidationError
from lanehub.domain.ownership import RULE_ENTITIES, field_rules
from lanehub.web.app import requires


def fields_blueprint() -> Blueprint:
    bp = Blueprint("fields", __name__, url_prefix="/fields")

    def page(values=None, errors=None, status=200):
        declared = [g.db.replica.get("extra_field", r[0]) for r in
                    g.db.conn.execute("SELECT id FROM extra_fields ORDER BY active DESC, name")]
        rules = {entity: sorted(field_rules(g.db.conn, entity).values(), key=lambda r: r.field) for entity in RULE_ENTITIES}
        return render_template("fields.html", declared=declared, rules=rules, values=values or {},
                               errors=errors or {}), status

    @bp.route("/")
    @requires("customers.view")
    def index():
        return page()

    @bp.route("/", methods=["POST"])
    @requires("customers.import")
    def declare():
        """Declare a new extra field, relabel one, or withdraw / bring one back."""
        values = {k: request.form.get(k, "").strip() for k in ("name", "label")}
        active = request.form.get("action", "declare") != "withdraw"
        try:
            record = declare_extra_field(g.db, values["name"], values["label"], g.user["username"], active=active)
        except ValidationError as exc:
            return page(values, exc.errors, 422)
        flash(f"Extra field {record['name']} ({record['label']}) "
              f"{'is shown on every customer page' if record['active'] else 'is withdrawn: hidden, values kept'}.")
        return redirect(url_for("fields.index"))

    return bp

