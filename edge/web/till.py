"""The cashier screen: a lane's live ticket in a browser (docs/web.md "Till").

Every action on the screen is a lane event: the view builds a ``TicketCommand``
(validated as the lane worker will read it), sends it through the edge's
``TillLink`` on the store broker and waits for the ticket state it caused, so
what the cashier sees next is what the lane worker did, and the scanner on
the same lane and the screen take turns in one order. Customers are found,
created and given cards on the store's replica, as the store page does (a new
customer is usable at once, HQ or not); attaching one is again a command.

The ticket part of the screen is live (lanehub.web.live): woken by each ticket
state the link receives, so a scan from the lane's own scanner shows within
milliseconds, without a reload.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, abort, flash, g, jsonify, redirect, render_template, request, url_for

from edge.lane.till import TillLink
from lanehub.domain.address_edits import add_address
from lanehub.domain.addresses import ADDRESS_KINDS, ADDRESS_LINES, addresses_of
from lanehub.domain.model import CARD_KINDS, CONSENT_CHANNELS, ValidationError, current_consents, display_name
from lanehub.domain.references import rate_choices
from lanehub.domain.search import search_customers
from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import Receipt, TicketCommand
from lanehub.receipts.image import receipt_png
from lanehub.web.app import requires
from lanehub.web.live import live_view

ANSWER_WITHIN = 3.0  # seconds a till waits for its lane's answer (the lane worker takes milliseconds)
COUPON_ANSWER_WITHIN = 12.0  # a coupon asks HQ first (edge.hq_link: up to its request timeout)
SEARCH_LIMIT = 10
PICTURE_COLUMNS = 42  # as the store page's receipt pictures
# Commands the screen's buttons send, with the form fields each takes.
COMMAND_FIELDS = {"open": (), "remove": ("line",), "clear_customer": (), "void": (), "close": ("email",),
                  "apply_coupon": ("coupon",), "set_customer": ("customer_id", "card", "code")}
CREATE_FIELDS = ("first_name", "last_name", "email", "phone", "postcode", "rate")
SOURCE_WORDS = {"retail": "retail", "specific": "customer price", "label": "price on the label"}


def price_source(source: str) -> str:
    """A line's price source in words: ``rate:VIP`` is "rate VIP"."""
    if source.startswith("rate:"):
        return f"rate {source[5:]}"
    return SOURCE_WORDS.get(source, source)


def till_blueprint(till: TillLink | None, lanes_configured: tuple[str, ...] = ()) -> Blueprint:
    """``till``: the running edge service's link; without one (the page served on
    its own) the screens say so instead of selling."""
    bp = Blueprint("till", __name__)

    def checked_lane(lane: str) -> str:
        try:
            return topics.check_id(lane, "lane")
        except topics.TopicError:
            abort(404)

    def render_ticket(db, lane: str) -> str:
        state = till.state(lane) if till else None
        receipts = []
        if state is not None and state.ticket and state.status == "closed":
            receipts = [dict(r) for r in db.conn.execute(
                "SELECT job, status FROM print_jobs WHERE ticket = ? AND lane = ? ORDER BY created_at", (state.ticket, lane))]
        return render_template("store/till_ticket.html", lane=lane, state=state, receipts=receipts,
                               price_source=price_source, connected=bool(till and till.connected), has_till=till is not None)

    def page(lane: str, errors: dict | None = None, values: dict | None = None, status: int = 200):
        query = request.args.get("q", "").strip()
        found = []
        if query:
            for row in search_customers(g.db.conn, query, SEARCH_LIMIT):
                found.append(dict(row) | {"name": display_name(row), "consents": current_consents(g.db.conn, row["id"])})
        state = till.state(lane) if till else None
        addresses = addresses_of(g.db.conn, state.customer.id) if state and state.customer else []
        return render_template("store/till.html", lane=lane, ticket=render_ticket(g.db, lane), query=query, found=found,
                               searched=bool(query), errors=errors or {}, values=values or {}, state=state,
                               addresses=addresses, address_kinds=ADDRESS_KINDS,
                               address_open=any(key.startswith("address") for key in errors or {}),
                               rates=rate_choices(g.db.conn), channels=CONSENT_CHANNELS, card_kinds=CARD_KINDS,
                               new_open=any(key.startswith("new_") for key in errors or {}), has_till=till is not None), status

    def send(lane: str, fields: dict, field: str = "form"):
        """Send a command; the answer for a person (a redirect) or for the screen's script (JSON)."""
        wants_json = request.accept_mimetypes.best == "application/json"
        try:
            command = TicketCommand.by(g.user["username"], fields)
        except PayloadError as exc:
            return refused(lane, {field: plain(str(exc))}, wants_json)
        if till is None:
            return refused(lane, {field: "this page is not running inside the edge service: nothing was sent"}, wants_json)
        if not till.connected:
            return refused(lane, {field: "the store broker cannot be reached: nothing was sent; try again in a moment"},
                           wants_json)
        till.send(lane, command)
        state = till.wait_for(lane, command.id, COUPON_ANSWER_WITHIN if command.op == "apply_coupon" else ANSWER_WITHIN)
        if state is None:
            message = f"lane {lane} has not answered yet; the screen shows it when it does"
            if wants_json:
                return jsonify({"sent": True, "message": message}), 202
            flash(message)
        elif wants_json:
            return jsonify({"sent": True, "ticket": state.ticket, "status": state.status}), 200
        return redirect(url_for("till.screen", lane=lane))

    def refused(lane: str, errors: dict, wants_json: bool):
        if wants_json:
            return jsonify({"errors": errors}), 422
        return page(lane, errors=errors, values=request.form.to_dict(), status=422)

    @bp.route("/till/")
    @requires("lane.operate")
    def index():
        known = {r[0] for r in g.db.conn.execute("SELECT lane FROM lanes UNION SELECT lane FROM device_status WHERE lane != ''")}
        lanes = sorted(known | set(lanes_configured) | set(till.lanes() if till else ()))
        return render_template("store/till_index.html", lanes=lanes, has_till=till is not None)

    @bp.route("/lanes/<lane>/till")
    @requires("lane.operate")
    def screen(lane):
        return page(checked_lane(lane))

    @bp.route("/lanes/<lane>/till/ticket")
    @requires("lane.operate")
    def ticket(lane):
        lane = checked_lane(lane)
        return live_view(lambda db: render_ticket(db, lane), every=5.0, changes=till.changes if till else None)

    @bp.route("/lanes/<lane>/till/add", methods=["POST"])
    @requires("lane.operate")
    def add(lane):
        lane = checked_lane(lane)
        code, qty = request.form.get("code", "").strip(), request.form.get("qty", "").strip() or "1"
        if not code:
            return refused(lane, {"code": "scan or type a barcode"}, request.accept_mimetypes.best == "application/json")
        return send(lane, {"op": "add", "code": code, "qty": qty}, field="code")

    @bp.route("/lanes/<lane>/till/command", methods=["POST"])
    @requires("lane.operate")
    def command(lane):
        lane = checked_lane(lane)
        op = request.form.get("op", "")
        if op not in COMMAND_FIELDS:
            abort(400, f"unknown till action {op!r}")
        fields: dict = {"op": op}
        who = request.form.get("who", "").strip()
        if op == "set_customer" and who:
            # One box for both: a customer code (or id) of this replica, else a card number.
            fields["code" if g.db.replica.find_customer(who) else "card"] = who
        for name in COMMAND_FIELDS[op]:
            value = request.form.get(name, "").strip()
            if value:
                fields[name] = int(value) if name == "line" and value.isdigit() else value
        return send(lane, fields, field=op)

    @bp.route("/lanes/<lane>/till/customers", methods=["POST"])
    @requires("lane.operate")
    def create_customer(lane):
        """A new customer from the till, attached to the ticket at once."""
        lane = checked_lane(lane)
        if "customers.create" not in g.permissions:
            abort(403)
        values = {name: request.form.get(name, "").strip() for name in CREATE_FIELDS}
        card = request.form.get("card", "").strip()
        try:
            record = g.db.create_customer({k: v for k, v in values.items() if v}, g.user["username"])
        except ValidationError as exc:
            return page(lane, errors={f"new_{k}": v for k, v in exc.errors.items()}, values=request.form.to_dict(),
                        status=422)
        for channel in CONSENT_CHANNELS:
            if request.form.get(f"consent_{channel}") == "1":
                g.db.record_consent(record["id"], channel, True, lane, g.user["username"])
        if card:
            try:
                g.db.add_card(record["id"], card, request.form.get("card_kind", CARD_KINDS[0]), g.user["username"])
            except ValidationError as exc:
                flash(f"Customer {record['code']} created, but the card was not added: {exc.errors.get('card', exc)}")
        flash(f"Customer {record['code']} {display_name(record)} created.")
        return send(lane, {"op": "set_customer", "customer_id": record["id"]}, field="new_first_name")

    def on_ticket(lane: str, field: str):
        """(the customer attached to the lane's ticket, None), or (None, the page
        telling ``field`` to attach one first)."""
        state = till.state(lane) if till else None
        if state is None or state.customer is None:
            return None, page(lane, errors={field: "attach a customer to the ticket first"}, status=422)
        return state.customer, None

    @bp.route("/lanes/<lane>/till/card", methods=["POST"])
    @requires("lane.operate")
    def add_card(lane):
        """A card for the customer on the ticket."""
        lane = checked_lane(lane)
        customer, refusal = on_ticket(lane, "card_number")
        if customer is None:
            return refusal
        try:
            card = g.db.add_card(customer.id, request.form.get("number", "").strip(),
                                 request.form.get("kind", CARD_KINDS[0]), g.user["username"])
        except ValidationError as exc:
            return page(lane, errors={"card_number": exc.errors.get("card") or "; ".join(exc.errors.values())},
                        values=request.form.to_dict(), status=422)
        flash(f"Card {card['number']} given to {customer.code} {customer.name}.")
        return redirect(url_for("till.screen", lane=lane))

    @bp.route("/lanes/<lane>/till/address", methods=["POST"])
    @requires("lane.operate")
    def add_address_view(lane):
        """A further address (delivery, billing...) for the customer on the ticket, like a card."""
        lane = checked_lane(lane)
        customer, refusal = on_ticket(lane, "address")
        if customer is None:
            return refusal
        fields = {name: request.form.get(name, "") for name in ("kind", *ADDRESS_LINES)}
        try:
            add_address(g.db, customer.id, fields | {"preferred": request.form.get("preferred") == "1"},
                        g.user["username"])
        except ValidationError as exc:
            # The typed value is not shown again where it was refused (it may be a card number).
            return page(lane, errors={f"address_{k}": v for k, v in exc.errors.items()},
                        values={k: v for k, v in fields.items() if k not in exc.errors}, status=422)
        flash(f"{fields['kind'].capitalize()} address added to {customer.code} {customer.name}.")
        return redirect(url_for("till.screen", lane=lane))

    @bp.route("/lanes/<lane>/till/receipts/<ticket>.png")
    @requires("lane.operate")
    def receipt(lane, ticket):
        """The picture of a receipt this lane printed (or e-mailed), as the printer prints it."""
        row = g.db.conn.execute("SELECT receipt FROM print_jobs WHERE ticket = ? AND lane = ? ORDER BY created_at DESC",
                                (ticket, checked_lane(lane))).fetchone()
        if row is None:
            abort(404)
        png = receipt_png(Receipt.from_dict(json.loads(row["receipt"])), columns=PICTURE_COLUMNS)
        return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return bp


def plain(message: str) -> str:
    """A payload check's message for a person: without the "ticket command:" prefix, quotes in words."""
    return re.sub(r"^ticket command: ", "", message).replace("'qty'", "quantity")

