"""The customers pages, the same at HQ and in the store: list with search,
detail, add, edit, deactivate/reactivate. ``db`` is HQ's or the edge's
database (both have create/update/find_customer); errors are shown next to
their field and nothing typed is lost."""

from __future__ import annotations

from typing import Callable

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from lanehub.domain.address_edits import add_address, prefer_address, remove_address
from lanehub.domain.addresses import ADDRESS_KINDS, ADDRESS_LINES, KIND_LABELS, addresses_of, one_line
from lanehub.domain.extra_fields import PREFIX, declared, extras_of, with_extras
from lanehub.domain.model import CUSTOMER_EDITABLE, PAYMENT_STATUSES, ValidationError, current_consents
from lanehub.domain.ownership import owned_fields
from lanehub.domain.payment_cards import find_payment_card, mask, payment_card_errors, redact, refusal
from lanehub.domain.references import rate_choices
from lanehub.domain.sales import purchase_history
from lanehub.domain.search import search_customers
from lanehub.replication.sqlite import has_table
from lanehub.web.app import page_args, requires

PAGE = 50
# What a person reads for each customer field (the detail page, the change history).
FIELD_LABELS = {
    "code": "Code", "first_name": "First name", "last_name": "Last name", "email": "E-mail", "phone": "Phone",
    "mobile": "Mobile", "tax_id": "Tax id", "street": "Street", "city": "City", "postcode": "Postcode",
    "country": "Country", "contact": "Contact", "notes": "Notes", "rate": "Rate", "payment_status": "Payment status",
    "status": "Status", "origin_store": "Origin store", "created_at": "Created", "created_by": "Created by",
    "updated_at": "Updated", "updated_by": "Updated by", "household_id": "Household", "merged_into": "Merged into",
    "external_id": "External number", "active": "Active", "no_paper": "E-mail receipts instead of printing",
}


def customers_blueprint(marker: Callable | None = None, refusals: tuple = (), audit: Callable | None = None,
                        audit_source: str = "") -> Blueprint:
    """``marker(db, record)`` returns a short state shown beside a customer
    (the store's "not yet confirmed by HQ" / "synced"); None at HQ.
    ``audit(db, record)`` returns who changed what and when (HQ keeps the log)."""
    bp = Blueprint("customers", __name__, url_prefix="/customers")

    @bp.route("/")
    @requires("customers.view")
    def index():
        q = request.args.get("q", "").strip()
        status = request.args.get("status", "active")
        payment = request.args.get("payment", "")
        origin = request.args.get("origin", "")
        duplicates = request.args.get("duplicates") == "1"
        page, size = page_args(PAGE)
        card = find_payment_card(q)
        if card:  # not searched for, not shown back: the page says why (lanehub.domain.payment_cards)
            flash(refusal(mask(card)))
            q, records, more = "", [], False
        elif q:
            rows = search_customers(g.db.conn, q, 100)
            records = [g.db.replica.get("customer", r["id"]) for r in rows]
            more = False
        else:
            where, args = [], []
            if status in ("active", "deactivated"):
                where.append("active = ?")
                args.append(1 if status == "active" else 0)
            if payment in PAYMENT_STATUSES:
                where.append("payment_status = ?")
                args.append(payment)
            if origin:
                where.append("coalesce(origin_store, '') = ?")
                args.append("" if origin == "HQ" else origin)
            if duplicates and _has_table("possible_duplicates"):
                where.append("id IN (SELECT a FROM possible_duplicates WHERE status = 'open' "
                             "UNION SELECT b FROM possible_duplicates WHERE status = 'open')")
            sql = "SELECT id FROM customers" + (" WHERE " + " AND ".join(where) if where else "")
            keys = [r[0] for r in g.db.conn.execute(sql + " ORDER BY code LIMIT ? OFFSET ?",
                                                     (*args, size + 1, (page - 1) * size))]
            more = len(keys) > size
            records = [g.db.replica.get("customer", k) for k in keys[:size]]
        marks = {r["id"]: marker(g.db, r) for r in records} if marker else {}
        origins = ["HQ", *(r[0] for r in g.db.conn.execute(
            "SELECT DISTINCT origin_store FROM customers WHERE origin_store != '' ORDER BY 1"))]
        return render_template("customers/list.html", records=records, q=q, status=status, payment=payment,
                               page=page, more=more, marks=marks, payments=PAYMENT_STATUSES, origin=origin,
                               origins=origins, duplicates=duplicates,
                               can_filter_duplicates=_has_table("possible_duplicates"))

    @bp.route("/new", methods=["GET", "POST"])
    @requires("customers.create")
    def new():
        values, errors, extra = {}, {}, _extra_values()
        if request.method == "POST":
            values = _form_values()
            refused = _mask_payment_cards(values, extra)  # an unknown rate: refused by create_customer
            try:
                if refused:
                    raise ValidationError(refused)
                record = g.db.create_customer(values, g.user["username"], extra=extra)
            except ValidationError as exc:
                errors = exc.errors
            except refusals as exc:
                errors = {"form": str(exc)}
            else:
                flash(f"Customer {record['code']} created.")
                return redirect(url_for("customers.detail", ref=record["id"]))
        values = values | {PREFIX + name: value for name, value in extra.items()}
        return render_template("customers/form.html", values=values, errors=errors, record=None,
                               fields=CUSTOMER_EDITABLE, payments=PAYMENT_STATUSES, owned={},
                               extras=declared(g.db.conn), rates=rate_choices(g.db.conn)), (422 if errors else 200)

    @bp.route("/<ref>")
    @requires("customers.view")
    def detail(ref):
        return detail_page(_found(ref))

    def detail_page(record: dict, address_errors: dict | None = None, address_values: dict | None = None,
                    status: int = 200):
        cards = [dict(r) for r in g.db.conn.execute(
            "SELECT number, kind, active FROM cards WHERE customer_id = ? ORDER BY number", (record["id"],))]
        consents = [dict(r) for r in g.db.conn.execute(
            "SELECT channel, granted, at, store, lane, user FROM consents WHERE customer_id = ? ORDER BY at DESC",
            (record["id"],))]
        household, members = None, []
        if record["household_id"]:
            household = g.db.replica.get("household", record["household_id"])
            members = [g.db.replica.get("customer", r[0]) for r in g.db.conn.execute(
                "SELECT id FROM customers WHERE household_id = ? AND id != ? ORDER BY code", (record["household_id"], record["id"]))]
        extras = declared(g.db.conn)
        values = extras_of(g.db.conn, record["id"])
        return render_template("customers/detail.html", record=record, cards=cards, consents=consents,
                               extras=[(label, values.get(name, "")) for name, label in extras.items()],
                               household=household, members=members,
                               current=current_consents(g.db.conn, record["id"]),
                               history=purchase_history(g.db.conn, record["id"], 20),
                               mark=marker(g.db, record) if marker else None,
                               audit=_in_words(audit(g.db, record), extras) if audit else None,
                               has_audit=audit is not None,
                               audit_source=audit_source, addresses=addresses_of(g.db.conn, record["id"]),
                               main_address=one_line(record), address_kinds=ADDRESS_KINDS,
                               address_errors=address_errors or {}, address_values=address_values or {}), status

    @bp.route("/<ref>/addresses", methods=["POST"])
    @requires("customers.edit")
    def add_address_view(ref):
        record = _found(ref)
        values = {name: request.form.get(name, "").strip() for name in ("kind", "label", *ADDRESS_LINES)}
        try:
            add_address(g.db, record["id"], values | {"preferred": request.form.get("preferred") == "1"},
                        g.user["username"])
        except ValidationError as exc:
            typed = {name: ("" if isinstance(value, str) and find_payment_card(value) else value)  # never echoed
                     for name, value in request.form.to_dict().items()}
            return detail_page(record, exc.errors, typed, 422)
        flash(f"{KIND_LABELS[values['kind']]} address added to {record['code']}.")
        return redirect(url_for("customers.detail", ref=record["id"]) + "#addresses")

    @bp.route("/<ref>/addresses/<address_id>/<action>", methods=["POST"])
    @requires("customers.edit")
    def change_address(ref, address_id, action):
        record = _found(ref)
        found = g.db.replica.get("address", address_id)
        if found is None or found["customer_id"] != record["id"] or action not in ("prefer", "remove"):
            abort(404)
        try:
            (prefer_address if action == "prefer" else remove_address)(g.db, address_id, g.user["username"])
        except ValidationError as exc:
            flash(f"Address not changed: {exc.errors.get('address', exc)}.")
        else:
            flash("Address removed." if action == "remove" else f"{one_line(found)} is the preferred "
                  f"{found['kind']} address now.")
        return redirect(url_for("customers.detail", ref=record["id"]) + "#addresses")

    @bp.route("/<ref>/edit", methods=["GET", "POST"])
    @requires("customers.edit")
    def edit(ref):
        record = _found(ref)
        values, errors = with_extras(g.db.conn, record), {}
        owned = owned_fields(g.db.conn, "customer", record)
        if request.method == "POST":
            # Owned fields are shown, not posted; one posted anyway is refused by the write.
            values = _form_values(skip=owned)
            extra = _extra_values(skip=owned)
            # An unknown rate is refused by the write (lanehub.domain.customer_updates), only
            # when it changes: a customer kept from before rates were checked stays editable.
            refused = _mask_payment_cards(values, extra)
            values_shown = values | {PREFIX + name: value for name, value in extra.items()}
            try:
                if refused:
                    raise ValidationError(refused)
                # The form posts every field: only those that differ are this edit's.
                g.db.update_customer(record["id"], values, g.user["username"], extra=extra, only_changed=True)
            except ValidationError as exc:
                errors = exc.errors
            else:
                flash(f"Customer {record['code']} saved.")
                return redirect(url_for("customers.detail", ref=record["id"]))
        if errors:
            values = values_shown | {name: with_extras(g.db.conn, record).get(name, "") for name in owned}
        return render_template("customers/form.html", values=values, errors=errors, record=record,
                               fields=CUSTOMER_EDITABLE, payments=PAYMENT_STATUSES, owned=owned,
                               extras=declared(g.db.conn), rates=rate_choices(g.db.conn)), (422 if errors else 200)

    @bp.route("/<ref>/active", methods=["POST"])
    @requires("customers.edit")
    def set_active(ref):
        record = _found(ref)
        active = request.form.get("active") == "1"
        try:
            g.db.update_customer(record["id"], {"active": active}, g.user["username"])
        except ValidationError as exc:  # 'active' kept by an external system
            flash(f"Customer {record['code']} not changed: active {exc.errors.get('active', exc)}.")
        else:
            flash(f"Customer {record['code']} {'reactivated' if active else 'deactivated'}.")
        return redirect(url_for("customers.detail", ref=record["id"]))

    return bp


def shown_value(value) -> str:
    """A stored value as a person reads it: yes/no, "(empty)", else the text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "":
        return "(empty)"
    return str(value)


def _in_words(entries: list[dict] | None, extras: dict[str, str]) -> list[dict] | None:
    """The change history with each change as (field label, value in words)."""
    if entries is None:
        return None
    labels = FIELD_LABELS | {PREFIX + name: label for name, label in extras.items()}
    return [entry | {"changes": [(labels.get(name, name.replace("_", " ").capitalize()), shown_value(value))
                                 for name, value in entry["fields"].items()]} for entry in entries]


def _mask_payment_cards(values: dict, extra: dict) -> dict[str, str]:
    """{field: refusal} for each posted field holding a payment card number (shown
    beside it). The values are masked in place: the form shown again never has it."""
    errors = payment_card_errors(values) | {PREFIX + k: v for k, v in payment_card_errors(extra).items()}
    for fields in (values, extra):
        for name, value in fields.items():
            fields[name] = redact(value)
    return errors


def _has_table(name: str) -> bool:
    return has_table(g.db.conn, name)


def _found(ref: str) -> dict:
    record = g.db.find_customer(ref)
    if record is None:
        abort(404)
    return record


def _extra_values(skip: dict | tuple = ()) -> dict[str, str]:
    """The declared extra fields posted as ``extra.NAME`` (owned ones are shown, not posted)."""
    return {name: request.form.get(PREFIX + name, "") for name in declared(g.db.conn)
            if PREFIX + name in request.form and PREFIX + name not in skip}


def _form_values(skip: dict | tuple = ()) -> dict[str, str | bool]:
    values: dict[str, str | bool] = {}
    for name in CUSTOMER_EDITABLE:
        if name in skip and name not in request.form:
            continue
        if name == "no_paper":
            values[name] = request.form.get("no_paper") == "1"
        elif name in request.form:
            values[name] = request.form.get(name, "")
    return values
