"""Store admin pages beyond customers: lanes and devices (live, D42), closed sales
with "track to a customer", the printer queue with reprint, store settings."""

from __future__ import annotations

import json
import time

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from edge.lane.printers import PrinterRoutes, is_known_printer, printer_for, printers, test_receipt
from edge.lane.settings import EDITABLE_SETTINGS
from lanehub.domain.sales import SaleError, track_sale
from lanehub.protocol.change import new_id
from lanehub.protocol.hlc import now_iso
from lanehub.protocol.lane import ReceiptStore
from lanehub.replication.sqlite import transaction
from lanehub.web.app import requires
from lanehub.web.live import live_view

LIVE_EVERY = 1.0  # seconds between renders of the lanes page's live part
SETTING_CHOICES = {"coupon_offline": ("deny", "allow")}

# A receipt's state in print_jobs, as the printer queue shows it.
JOB_LABELS = {"pending": "waiting", "printed": "printed", "email": "e-mail (no paper)",
              "moved": "reprinted on another printer"}


def lanes_blueprint(routes: PrinterRoutes, store_header: ReceiptStore) -> Blueprint:
    """``routes``: edge.toml's printers; ``store_header``: the receipt header (test prints)."""
    bp = Blueprint("lanes", __name__, url_prefix="/lanes")

    def render_live(db) -> str:
        """The page's live part: lanes with their open ticket and its customer, devices, the printer queue."""
        conn = db.conn
        lanes = [dict(r) for r in conn.execute(
            "SELECT l.lane, l.current, t.status, t.opened_at, t.customer_id, c.code AS customer_code, "
            "trim(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')) AS customer_name, "
            "c.payment_status AS customer_payment, "
            "(SELECT count(*) FROM ticket_lines x WHERE x.ticket = t.ticket AND x.removed = 0) AS lines, "
            "(SELECT coalesce(sum(CAST(amount AS REAL)), 0) FROM ticket_lines x WHERE x.ticket = t.ticket AND x.removed = 0) AS total "
            "FROM lanes l LEFT JOIN tickets t ON t.ticket = l.current LEFT JOIN customers c ON c.id = t.customer_id "
            "ORDER BY l.lane")]
        for lane in lanes:
            lane["printer"] = printer_for(conn, routes, lane["lane"])
        devices = [dict(r) for r in conn.execute("SELECT * FROM device_status ORDER BY lane, device")]
        jobs = [dict(r) for r in conn.execute(
            "SELECT job, ticket, lane, device, status, attempts, printer_status, error, created_at, printed_at "
            "FROM print_jobs ORDER BY created_at DESC LIMIT 30")]
        return render_template("store/lanes_live.html", lanes=lanes, devices=devices, jobs=jobs, now=time.time(),
                               printers=printers(conn), job_labels=JOB_LABELS)

    @bp.route("/")
    @requires("devices.view")
    def index():
        return render_template("store/lanes.html", live=render_live(g.db))

    @bp.route("/live")
    @requires("devices.view")
    def live():
        # The lane worker and the device bridges write these rows in the edge's
        # other threads and processes: re-rendered every second, sent when it differs.
        return live_view(render_live, every=LIVE_EVERY)

    @bp.route("/jobs/<job>/reprint", methods=["POST"])
    @requires("devices.view")
    def reprint(job):
        conn = g.db.conn
        row = conn.execute("SELECT ticket, lane, device, receipt, status FROM print_jobs WHERE job = ?", (job,)).fetchone()
        if row is None:
            abort(404)
        device = request.form.get("printer", "").strip() or row["device"] or printer_for(conn, routes, row["lane"])
        if not device:
            flash(f"Receipt {row['ticket']} not reprinted: lane {row['lane']} has no printer; choose one.", "error")
            return redirect(url_for("lanes.index"))
        if device != row["device"] and not is_known_printer(conn, device):
            abort(400, f"no printer {device!r} has reported in this store")
        with transaction(conn):  # a new job id: the printer bridge prints a job id once
            conn.execute("INSERT INTO print_jobs (job, ticket, lane, device, receipt, status, created_at) "
                         "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                         (new_id(), row["ticket"], row["lane"], device, row["receipt"], time.time()))
            if row["status"] == "pending" and device != row["device"]:
                # Not printed where it was sent: it prints here instead, not twice.
                conn.execute("UPDATE print_jobs SET status = 'moved', error = ? WHERE job = ? AND status = 'pending'",
                             (f"reprinted on {device}", job))
        flash(f"Receipt {row['ticket']} sent to printer {device}.")
        return redirect(url_for("lanes.index"))

    @bp.route("/printers/<device>/test", methods=["POST"])
    @requires("devices.view")
    def test_print(device):
        conn = g.db.conn
        printer = next((p for p in printers(conn) if p["device"] == device), None)
        if printer is None:
            abort(404)
        receipt = test_receipt(store_header, printer["lane"], device, g.user["username"])
        with transaction(conn):
            conn.execute("INSERT INTO print_jobs (job, ticket, lane, device, receipt, status, created_at) "
                         "VALUES (?, 'test print', ?, ?, ?, 'pending', ?)",
                         (new_id(), printer["lane"], device, json.dumps(receipt.to_dict()), time.time()))
        flash(f"Test print sent to printer {device}.")
        return redirect(url_for("lanes.index"))

    return bp


def sales_blueprint() -> Blueprint:
    bp = Blueprint("sales", __name__, url_prefix="/sales")

    @bp.route("/", methods=["GET", "POST"])
    @requires("sales.track")
    def index():
        errors = {}
        if request.method == "POST":
            ticket, customer = request.form.get("ticket", ""), request.form.get("customer", "").strip()
            try:
                track_sale(g.db, ticket, customer, g.user["username"])
            except SaleError as exc:
                errors[ticket] = str(exc)
            else:
                flash(f"Sale {ticket} tracked to {customer}.")
                return redirect(url_for("sales.index"))
        rows = g.db.conn.execute(
            "SELECT s.ticket, s.lane, s.closed_at, s.total, s.currency, s.lines, c.code, c.first_name, c.last_name "
            "FROM sales s LEFT JOIN customers c ON c.id = s.customer_id WHERE s.store = ? "
            "ORDER BY s.closed_at DESC LIMIT 50", (g.db.store,)).fetchall()
        sales = [dict(r) | {"items": len(json.loads(r["lines"] or "[]"))} for r in rows]
        return render_template("store/sales.html", sales=sales, errors=errors), (422 if errors else 200)

    return bp


def settings_blueprint(defaults) -> Blueprint:
    bp = Blueprint("settings", __name__, url_prefix="/settings")

    @bp.route("/", methods=["GET", "POST"])
    @requires("stores.manage")
    def index():
        conn = g.db.conn
        if request.method == "POST":
            with transaction(conn):
                for key, kind in EDITABLE_SETTINGS.items():
                    if kind is bool:
                        value = "true" if request.form.get(key) == "1" else "false"
                    else:
                        value = request.form.get(key, "")
                        if value not in SETTING_CHOICES[key]:
                            abort(400, f"{key} must be one of {', '.join(SETTING_CHOICES[key])}")
                    conn.execute("INSERT INTO settings (key, value, updated_by, updated_at) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, "
                                 "updated_at = excluded.updated_at", (key, value, g.user["username"], now_iso()))
            flash("Settings saved; the lanes use them from their next scan.")
            return redirect(url_for("settings.index"))
        stored = {r["key"]: dict(r) for r in conn.execute("SELECT * FROM settings")}
        current = {key: (stored[key]["value"] if key in stored else
                         ("true" if getattr(defaults, key) is True else "false" if getattr(defaults, key) is False
                          else getattr(defaults, key))) for key in EDITABLE_SETTINGS}
        return render_template("store/settings.html", current=current, stored=stored, choices=SETTING_CHOICES)

    return bp
