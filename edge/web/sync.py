"""The store's sync page (sync.view): the link to HQ, the replica, the outbox,
codes left and HQ's refusals, with the store's lag behind HQ and outbox depth
over the last hour as a chart (the samples edge/hq_link.py records). The
status part is live: a fragment streamed as Server-Sent Events
(lanehub/web/live.py), re-rendered every couple of seconds since the edge's
service writes these figures from its own process."""

from __future__ import annotations

import time

from flask import Blueprint, g, render_template

from edge.db import EdgeDatabase
from lanehub.web.app import requires
from lanehub.web.charts import lag_and_outbox_chart
from lanehub.web.live import live_view

CHART_SPAN = 3600.0  # seconds of lag and outbox on the page
LIVE_EVERY = 2.0  # seconds between re-renders of the live part


def sync_samples(db: EdgeDatabase, since: float) -> list[dict]:
    """The store's lag/outbox samples from ``since`` on, oldest first."""
    return [dict(row) for row in db.conn.execute(
        "SELECT at, hq_link, lag, pending_up FROM sync_samples WHERE at >= ? ORDER BY at", (since,))]


def sync_status(db: EdgeDatabase) -> dict:
    return {"last_seq": db.last_seq, "pending_up": db.pending_up(), "ready": db.ready,
            "hq_link": db.meta.get("hq_link", "unknown"), "codes_left": db.codes_left() if db.codes else 0}


def render_live(db: EdgeDatabase) -> str:
    now = time.time()
    chart = lag_and_outbox_chart(f"Store {db.store}: lag and outbox, last hour", sync_samples(db, now - CHART_SPAN),
                                 start=now - CHART_SPAN, end=now)
    return render_template("sync_live.html", status=sync_status(db), chart=chart)


def sync_blueprint() -> Blueprint:
    bp = Blueprint("sync", __name__, url_prefix="/sync")

    @bp.route("/")
    @requires("sync.view")
    def index():
        return render_template("sync.html", live=render_live(g.db), rejections=g.db.rejections())

    @bp.route("/live")
    @requires("sync.view")
    def live():
        return live_view(render_live, every=LIVE_EVERY)

    return bp
