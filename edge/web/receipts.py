"""The store page's receipts: the last receipts of each lane as pictures (the
same layout the printer prints), and the e-mailed receipts with their state."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, url_for

from edge.lane.mail import MailOutbox
from lanehub.protocol.lane import Receipt
from lanehub.receipts.image import receipt_png
from lanehub.web.app import requires

PER_LANE = 4  # receipts shown per lane
PICTURE_COLUMNS = 42  # the common 80 mm printer's font A columns


def receipts_blueprint(mail_configured: bool) -> Blueprint:
    bp = Blueprint("receipts", __name__, url_prefix="/receipts")

    @bp.route("/")
    @requires("devices.view")
    def index() -> str:
        conn = g.db.conn
        rows = conn.execute(
            "SELECT job, ticket, lane, device, status, created_at FROM ("
            " SELECT *, row_number() OVER (PARTITION BY lane ORDER BY created_at DESC) AS nth FROM print_jobs"
            " WHERE ticket != 'test print') WHERE nth <= ? ORDER BY lane, created_at DESC", (PER_LANE,)).fetchall()
        lanes: dict[str, list[dict]] = {}
        for row in rows:
            lanes.setdefault(row["lane"], []).append(dict(row))
        return render_template("store/receipts.html", lanes=lanes, mails=MailOutbox(conn).recent(30),
                               mail_configured=mail_configured)

    @bp.route("/<job>.png")
    @requires("devices.view")
    def picture(job):
        row = g.db.conn.execute("SELECT receipt FROM print_jobs WHERE job = ?", (job,)).fetchone()
        if row is None:
            abort(404)
        png = receipt_png(Receipt.from_dict(json.loads(row["receipt"])), columns=PICTURE_COLUMNS)
        return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @bp.route("/mail/<mail_id>/retry", methods=["POST"])
    @requires("devices.view")
    def retry(mail_id):
        if MailOutbox(g.db.conn).retry(mail_id):
            flash("The e-mail is sent again within a minute.")
        else:
            flash("That e-mail was sent already (or does not exist).", "error")
        return redirect(url_for("receipts.index"))

    return bp
