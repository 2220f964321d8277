"""HQ Manager: imports from an external system's CSV export, the same engine
as ``lanehub hq import`` (hq/imports/engine.py). An upload shows the plan (what
would be added, updated, deactivated, and every invalid row) and changes
nothing; the same file with "import it" carries that plan out. Imports from a
database URL stay on the CLI and the scheduled timers (their credentials are
not for a browser form)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from hq.imports.engine import Caps, ImportAborted, ImportSpec, import_file
from hq.imports.targets import TARGETS
from lanehub.web.app import requires, saved_upload

SHOWN_CHANGES = 500  # a preview lists this many changes; the counts cover them all


def imports_blueprint() -> Blueprint:
    bp = Blueprint("imports", __name__, url_prefix="/imports")

    def specs() -> dict[str, ImportSpec]:
        config = current_app.extensions["lanehub"]["config"]
        return {kind: ImportSpec.from_config(config, kind, TARGETS[kind](g.db)) for kind in TARGETS}

    @bp.route("/")
    @requires("customers.view")
    def index():
        configured = current_app.extensions["lanehub"]["config"].get("import", {})
        return render_template("imports.html", specs=specs(), configured=configured, plan=None, problem=None,
                               values={})

    @bp.route("/<kind>", methods=["POST"])
    @requires("customers.import")
    def run(kind):
        if kind not in TARGETS:
            abort(404)
        spec = specs()[kind]
        upload = request.files.get("file")
        values = {"kind": kind, "deactivate_missing": request.form.get("deactivate_missing") == "1",
                  "skip_invalid": request.form.get("skip_invalid") == "1",
                  "max_deactivate": request.form.get("max_deactivate", "").strip()}
        if upload is None or not upload.filename:
            return _page(kind, values, problem="Choose the CSV file first.", status=422)
        try:
            cap = int(values["max_deactivate"]) if values["max_deactivate"] else None
            if cap is not None and cap < 0:
                raise ValueError
        except ValueError:
            return _page(kind, values, problem="At most … deactivated must be a whole number (or empty).", status=422)
        confirm = request.form.get("confirm") == "1"
        with saved_upload(upload, f"{kind}.csv") as path:
            try:
                plan = import_file(g.db, kind, path, f"import:{spec.source}:{g.user['username']}", dry_run=not confirm,
                                   config=current_app.extensions["lanehub"]["config"], caps=Caps(deactivate=cap),
                                   skip_invalid=values["skip_invalid"], deactivate_missing=values["deactivate_missing"])
            except ImportAborted as exc:
                return _page(kind, values, plan=exc.plan, problem=f"Nothing was imported: {exc}.", status=422)
        if confirm:
            flash(f"{plan.summary()} ({plan.unchanged} unchanged).")
            return redirect(url_for("imports.index"))
        return _page(kind, values, plan=plan)

    def _page(kind, values, plan=None, problem=None, status=200):
        configured = current_app.extensions["lanehub"]["config"].get("import", {})
        return render_template("imports.html", specs=specs(), configured=configured, plan=plan, problem=problem,
                               values=values, kind=kind, shown=SHOWN_CHANGES), status

    return bp
