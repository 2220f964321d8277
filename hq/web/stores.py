"""HQ Manager: stores (stores.manage). Each store's link state, lag and outbox,
live (a fragment streamed as Server-Sent Events, lanehub/web/live.py: HQ's
service writes the figures from another process, so it is re-rendered every
couple of seconds), with its lag and outbox over the last hour as a chart;
sales per store per day; HQ's rejections; registering a store."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from hq.db import HQDatabase
from hq.samples import store_samples
from lanehub.web.app import requires
from lanehub.web.charts import Bar, bar_chart, lag_and_outbox_chart
from lanehub.web.live import live_view

OFFLINE_AFTER = 15 * 60  # no contact for this long: a store shows as Offline
CHART_SPAN = 3600.0  # seconds of lag and outbox on the stores page
SALES_DAYS = 30
LIVE_EVERY = 2.0  # seconds between re-renders of the live part


def store_rows(db: HQDatabase, now: float) -> list[dict]:
    """Every store as the page shows it: its state in words, lag and rejections."""
    head = db.head()
    stores = []
    for row in db.stores():
        if row["last_contact"] is None:
            state = "Pending provisioning"
        elif row["link_state"] == "online" and now - row["last_contact"] < OFFLINE_AFTER:
            state = "Active"
        else:
            state = "Offline"
        stores.append(row | {"state": state, "lag": head - row["last_seq"], "rejections": len(db.rejections(row["id"]))})
    return stores


def render_live(db: HQDatabase) -> str:
    """The live part: the stores' table and each store's chart of the last hour."""
    now = time.time()
    samples = store_samples(db, now - CHART_SPAN)
    stores = store_rows(db, now)
    charts = {s["id"]: lag_and_outbox_chart(f"Store {s['id']}: lag and outbox, last hour", samples.get(s["id"], []),
                                            start=now - CHART_SPAN, end=now) for s in stores}
    return render_template("stores_live.html", stores=stores, head=db.head(), now=now, charts=charts)


def sales_per_day(db: HQDatabase, stores: list[str], today: datetime | None = None) -> dict[str, list[Bar]]:
    """Each store's closed sales of the last SALES_DAYS days (UTC), one bar a day
    (days without a sale too): the number of sales, the takings as the note."""
    day = (today or datetime.now(timezone.utc)).date()
    days = [(day - timedelta(days=n)).isoformat() for n in range(SALES_DAYS - 1, -1, -1)]
    found: dict[tuple[str, str], tuple[int, float, str]] = {}
    for row in db.conn.execute(
            "SELECT store, substr(closed_at, 1, 10) AS day, count(*) AS sales, sum(CAST(total AS REAL)) AS takings, "
            "max(currency) AS currency FROM sales WHERE closed_at >= ? GROUP BY store, day", (days[0],)):
        found[(row["store"], row["day"])] = (row["sales"], row["takings"] or 0.0, row["currency"] or "")
    named = sorted(set(stores) | {store for store, _ in found})
    return {store: [Bar(day, found.get((store, day), (0, 0.0, ""))[0],
                        f"{found[(store, day)][1]:.2f} {found[(store, day)][2]}".strip() if (store, day) in found else "")
                    for day in days] for store in named}


def stores_blueprint() -> Blueprint:
    bp = Blueprint("stores", __name__, url_prefix="/stores")

    def page(errors=None, status=200):
        sales = sales_per_day(g.db, g.db.store_ids())
        sales_charts = {store: bar_chart(f"Store {store}: sales per day, last {SALES_DAYS} days (UTC)", bars,
                                         label_header="Day", value_header="Sales", note_header="Takings")
                        for store, bars in sales.items()}
        return render_template("stores.html", live=render_live(g.db), sales_charts=sales_charts,
                               rejections=g.db.rejections(), errors=errors or {}), status

    @bp.route("/")
    @requires("stores.manage")
    def index():
        return page()

    @bp.route("/live")
    @requires("stores.manage")
    def live():
        return live_view(render_live, every=LIVE_EVERY)

    @bp.route("/", methods=["POST"])
    @requires("stores.manage")
    def register():
        from hq.broker_files import broker_files_now

        store = request.form.get("store", "").strip()
        try:
            password = g.db.add_store(store)
        except ValueError as exc:
            return page({"store": str(exc)}, 422)
        config = current_app.extensions["lanehub"].get("config")
        problem = None
        if config is not None and "broker" in config:
            try:
                broker_files_now(g.db, config)
            except (OSError, RuntimeError) as exc:
                problem = f"the broker's password/ACL files were not updated: {exc}"
        broker = config["broker"] if config is not None and "broker" in config else {"host": "", "port": ""}
        # The password is shown once, on this response only; HQ keeps its hash.
        return render_template("store_registered.html", store=store, password=password, broker=broker, problem=problem)

    @bp.route("/rejections/<change_id>/retry", methods=["POST"])
    @requires("stores.manage")
    def retry(change_id):
        try:
            outcome = g.db.retry_rejection(change_id)
        except KeyError:
            abort(404)
        flash("Applied." if outcome.ok else f"Refused again: {outcome.reason}")
        return redirect(url_for("stores.index"))

    return bp
