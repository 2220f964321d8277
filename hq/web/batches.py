"""HQ Manager: batches (hq/batches/writes.py). Anyone with customers.view sees them;
every change needs customers.import."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from hq.batches.checks import columns_of
from hq.batches.writes import ACTION_NAMES, KIND_NAMES, STATUSES, BatchClosed, BatchError, Batches, plural, read_rows
from lanehub.domain.address_columns import ADDRESS_PREFIX
from lanehub.domain.addresses import KIND_LABELS
from lanehub.domain.entity import PAYMENT_STATUSES, TRUE_WORDS, ValidationError
from lanehub.domain.extra_fields import PREFIX, declared
from lanehub.domain.references import rate_choices
from lanehub.runtime.text_files import UploadEncodingError
from lanehub.web.app import requires
from lanehub.web.customers import FIELD_LABELS

# The input each batch column is keyed in with (anything else: a text box).
INPUT_KINDS = {"email": "email", "phone": "tel", "mobile": "tel", "notes": "textarea", "no_paper": "checkbox",
               "rate": "select", "payment_status": "select"}
REQUIRED = ("first_name", "last_name")


def batches_blueprint() -> Blueprint:
    bp = Blueprint("batches", __name__, url_prefix="/batches")

    def list_page(errors=None, values=None, status=200):
        wanted = request.args.get("status") if request.args.get("status") in STATUSES else None
        rates = [row[0] for row in g.db.conn.execute("SELECT code FROM rates WHERE status = 'active' ORDER BY code")]
        return render_template("batches/list.html", batches=Batches(g.db, g.user["username"]).list(wanted), wanted=wanted,
                               statuses=STATUSES, kinds=KIND_NAMES, actions=ACTION_NAMES, rates=rates,
                               payment_statuses=PAYMENT_STATUSES, errors=errors or {}, values=values or {}), status

    @bp.route("/")
    @requires("customers.view")
    def index():
        return list_page()

    @bp.route("/new-customers", methods=["POST"])
    @requires("customers.import")
    def new_customers():
        """A new-customers batch, with the uploaded CSV's rows if a file was chosen."""
        values = {"description": request.form.get("description", "").strip()}
        upload = request.files.get("file")
        try:
            rows = read_rows("new_customers", upload.read(), g.db.conn) if upload and upload.filename else []
            batch_id = Batches(g.db, g.user["username"]).new("new_customers", g.user["username"], values["description"])
            if rows:
                Batches(g.db, g.user["username"]).add_rows(batch_id, rows)
        except ValidationError as exc:
            return list_page(_errors(exc), values, 422)
        except UploadEncodingError as exc:  # "File fair.csv is not UTF-8 text ... it looks like ..."
            return list_page({"file": f"{upload.filename} {exc.reason}"}, values, 422)
        flash(f"Batch {batch_id} started with {plural(len(rows), 'row')}: review them, then execute.")
        return redirect(url_for("batches.review", ref=batch_id))

    @bp.route("/customer-updates", methods=["POST"])
    @requires("customers.import")
    def customer_updates():
        """A customer-updates batch for the codes in the text box (one per line)."""
        values = {k: request.form.get(k, "").strip() for k in ("description", "action", "rate", "payment_status", "codes")}
        value = {"set_rate": values["rate"], "set_payment_status": values["payment_status"]}.get(values["action"], "")
        try:
            rows = read_rows("customer_updates", values["codes"] + "\n", g.db.conn) if values["codes"] else []
            batch_id = Batches(g.db, g.user["username"]).new("customer_updates", g.user["username"], values["description"],
                                         values["action"], value)
            if rows:
                Batches(g.db, g.user["username"]).add_rows(batch_id, rows)
        except ValidationError as exc:
            return list_page(_errors(exc), values, 422)
        flash(f"Batch {batch_id} started with {plural(len(rows), 'customer')}: review them, then execute.")
        return redirect(url_for("batches.review", ref=batch_id))

    def review_page(batch_id, status=200, problem=None, values=None):
        batches = Batches(g.db, g.user["username"])
        header = batches.get(batch_id)
        return render_template("batches/review.html", batch=header, rows=batches.review(batch_id),
                               history=batches.history(batch_id), inputs=row_inputs(header["kind"], g.db.conn),
                               opened=request.args.get("row", type=int),
                               kinds=KIND_NAMES, actions=ACTION_NAMES, problem=problem, values=values or {}), status

    # <ref> is the batch number; the placeholder is named like the other pages' so
    # the route walk in tests/test_web.py reaches these routes too.
    @bp.route("/<ref>")
    @requires("customers.view")
    def review(ref):
        batch_id = _batch_id(ref)
        return review_page(batch_id)

    @bp.route("/<ref>", methods=["POST"])
    @requires("customers.import")
    def change(ref):
        """One verb on the batch (the form's ``action``); refusals show on the review page."""
        batch_id = _batch_id(ref)
        action = request.form.get("action", "")
        row_no = request.form.get("row_no", type=int)
        batches, by = Batches(g.db, g.user["username"]), g.user["username"]
        fields = posted_fields(columns_of(batches.get(batch_id)["kind"], g.db.conn))
        verbs = {
            "add_row": lambda: batches.add_row(batch_id, fields),
            "fix": lambda: batches.fix(batch_id, row_no, fields),
            "drop": lambda: batches.drop(batch_id, row_no),
            "restore": lambda: batches.drop(batch_id, row_no, dropped=False),
            "keep": lambda: batches.keep(batch_id, row_no),
            "unkeep": lambda: batches.keep(batch_id, row_no, keep=False),
            "execute": lambda: batches.execute(batch_id, by),
            "cancel": lambda: batches.cancel(batch_id, by),
        }
        if action not in verbs or (action not in ("add_row", "execute", "cancel") and row_no is None):
            abort(400)
        try:
            done = verbs[action]()
        except ValidationError as exc:
            return review_page(batch_id, 422, f"Not saved: {exc}", fields if action == "add_row" else None)
        except BatchClosed as exc:
            return review_page(batch_id, 409, str(exc))
        except BatchError as exc:  # execution refused, a row that is not there, nothing to keep
            return review_page(batch_id, 422, str(exc))
        flash(_done(batches.get(batch_id), action, row_no))
        if action in ("add_row", "fix"):  # the row's checks show next to its fields, its fix form open
            row = done if action == "add_row" else row_no
            return redirect(url_for("batches.review", ref=batch_id, row=row, _anchor=f"row-{row}"))
        return redirect(url_for("batches.review", ref=batch_id))

    return bp


def row_inputs(kind: str, conn) -> list[dict]:
    """How the row forms show each column of a batch of ``kind``: its label, the kind of
    input, the choices of a select."""
    extras = declared(conn)
    rates = [("", "(no rate)")] + rate_choices(conn)
    payments = [("", "(as a new customer: valid)")] + [(p, p) for p in PAYMENT_STATUSES]
    out = []
    for name in columns_of(kind, conn):
        if name.startswith(PREFIX):
            label = extras.get(name[len(PREFIX):], name[len(PREFIX):])
        elif name.startswith(ADDRESS_PREFIX):  # address.billing.street: "Billing address: street"
            _, kind, line = name.split(".")
            label = f"{KIND_LABELS[kind]} address: {line}"
        else:
            label = "Customer code" if name == "code" else FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
        out.append({"name": name, "label": label, "kind": INPUT_KINDS.get(name, "text"), "required": name in REQUIRED,
                    "choices": {"rate": rates, "payment_status": payments}.get(name, []), "true_words": TRUE_WORDS})
    return out


def posted_fields(columns) -> dict[str, str]:
    """The row fields a form posted. A checkbox (no_paper) comes after a hidden empty
    input of its name, so "not ticked" is posted too: "yes" or "" (no, the default)."""
    fields = {}
    for name in columns:
        if name not in request.form:
            continue
        values = request.form.getlist(name)
        fields[name] = ("yes" if "yes" in values else "") if INPUT_KINDS.get(name) == "checkbox" else values[0]
    return fields


def _batch_id(ref: str) -> int:
    """The batch a URL names; 404 unless it exists."""
    if not (ref.isascii() and ref.isdigit()) or not g.db.conn.execute("SELECT 1 FROM batches WHERE id = ?", (int(ref),)).fetchone():
        abort(404)
    return int(ref)


def _errors(exc: ValidationError) -> dict[str, str]:
    return dict(exc.errors)


def _done(batch: dict, action: str, row_no: int | None) -> str:
    messages = {
        "add_row": "Row added.", "fix": f"Row {row_no} saved and checked again.", "drop": f"Row {row_no} dropped.",
        "restore": f"Row {row_no} taken back.", "keep": f"Row {row_no} will be created anyway.",
        "unkeep": f"Row {row_no} is a possible duplicate again.", "cancel": f"Batch {batch['id']} cancelled.",
        "execute": f"Batch {batch['id']} executed: {batch['summary']}.",
    }
    return messages[action]

