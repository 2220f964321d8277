"""What the HQ Manager and the store admin page share: the application
factory's common part, login with hashed passwords and throttling, CSRF on
every form, and a permission on every route (docs/web.md).

Each site passes ``open_db`` (a database with ``.conn`` and ``.close()``) and
registers its own blueprints. Every view is wrapped by ``requires(permission)``,
which records the permission on the view, so a test can walk every route.

``GET /healthz`` (``health_blueprint``) is for monitors: no login, no session,
no database opened before it; it reports the service's broker links (which
``WebService`` hands the app) and whether the database can be read.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import tempfile
import threading
import time
from collections import defaultdict, deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from flask import Blueprint, Flask, Response, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from jinja2 import ChoiceLoader, FileSystemLoader
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.utils import secure_filename

from lanehub.domain.users import end_session, find_session_user, find_user, find_user_by_token, permissions_of, start_session
from lanehub.replication.sqlite import transaction

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
MAX_FAILURES = 5  # failed logins per user and address...
FAILURE_WINDOW = 600  # ...within this many seconds lock that pair out for the rest of it
PUBLIC = "public"  # the "permission" of the login page and static files
HEALTH_ENDPOINT = "health.healthz"  # answered without a session or the per-request database

log = logging.getLogger(__name__)


def web_secret(db) -> str:
    """The session-signing key, kept in the site's database so sessions survive restarts."""
    with transaction(db.conn):
        secret = db.meta.get("web_secret")
        if not secret:
            secret = secrets.token_hex(32)
            db.meta.set("web_secret", secret)
    return secret


class WebService:
    """A service plus its web page, started and stopped together; the page's
    /healthz reports the service's broker links (``service.broker_links()``)."""

    def __init__(self, service, app, host: str, port: int):
        self.service, self.app, self.host, self.port = service, app, host, port
        self.server = None
        links = getattr(service, "broker_links", None)
        if links is not None and app.extensions["lanehub"].get("links") is None:
            app.extensions["lanehub"]["links"] = links

    def start(self) -> "WebService":
        if self.port:
            self.server = serve_in_thread(self.app, self.host, self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        self.service.stop()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


@functools.cache
def dummy_password_hash() -> str:
    """A hash of a random password with the same method and parameters as the real
    ones: a login with an unknown user name checks against it, so it takes as long
    as a wrong password for a real user (names cannot be found by timing). Made when
    the app is, not on the first such login, which would take twice as long."""
    return hash_password(secrets.token_urlsafe(16))


def begin_session(db, user: dict) -> None:
    """Log ``user`` in on this browser: a new session row and id (a new id on every
    login and renewal, so an id seen before it is worthless)."""
    old = session.get("sid")
    csrf = session.get("csrf")
    with transaction(db.conn):
        if old:
            end_session(db.conn, old)
        sid = start_session(db.conn, user, _lifetime(), time.time())
    session.clear()
    session["sid"] = sid
    if csrf and old:  # a renewal keeps the page's forms working
        session["csrf"] = csrf
    session.permanent = True


def renew_session(db, username: str) -> None:
    """After a change that ended this user's sessions (their own new password or
    roles): the browser that made it stays logged in, under the new epoch."""
    user = find_user(db.conn, username)
    if user is not None and session.get("sid"):
        begin_session(db, user)


def _lifetime() -> float:
    return current_app.permanent_session_lifetime.total_seconds()


def requires(permission: str):
    """A view that needs ``permission`` (``PUBLIC`` for none): anonymous users are
    sent to the login page, users without it get 403."""

    def wrap(view: Callable):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            if permission != PUBLIC:
                if g.user is None:
                    if is_api():
                        abort(401)
                    return redirect(url_for("auth.login", next=request.full_path))
                if permission not in g.permissions:
                    abort(403)
            return view(*args, **kwargs)

        # An attribute on the view function, read back with getattr by the route walks.
        setattr(checked, "permission", permission)  # noqa: B010  (mypy knows no such attribute on a function)
        return checked

    return wrap


class LoginThrottle:
    def __init__(self) -> None:
        self.failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def blocked(self, username: str, address: str) -> bool:
        with self.lock:
            recent = self.failures[(username, address)]
            while recent and recent[0] < time.monotonic() - FAILURE_WINDOW:
                recent.popleft()
            return len(recent) >= MAX_FAILURES

    def failed(self, username: str, address: str) -> None:
        with self.lock:
            self.failures[(username, address)].append(time.monotonic())

    def succeeded(self, username: str, address: str) -> None:
        with self.lock:
            self.failures.pop((username, address), None)


def make_app(name: str, *, site: str, open_db: Callable, secret_key: str, secure_cookies: bool,
             templates: Path, store: str = "", title: str = "lanehub") -> Flask:
    """The common part of both sites: ``site`` is "hq" or "store"; ``templates`` is the site's own
    template folder, searched before the shared one (base, login, error, customers)."""
    app = Flask(name, template_folder=str(TEMPLATES), static_folder=str(STATIC))
    app.jinja_loader = ChoiceLoader([FileSystemLoader(str(templates)), FileSystemLoader(str(TEMPLATES))])
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.extensions["lanehub"] = {"site": site, "store": store, "title": title, "throttle": LoginThrottle(),
                                 "open_db": open_db, "links": None, "dummy_hash": dummy_password_hash()}

    @app.before_request
    def load_user():
        if request.endpoint == HEALTH_ENDPOINT:
            return  # a monitor's probe: it opens (and checks) the database itself
        g.db = open_db()
        g.user, g.permissions = None, frozenset()
        if is_api():  # integrators: a bearer token, no session, no CSRF (no cookie to ride on)
            header = request.headers.get("Authorization", "")
            user = find_user_by_token(g.db.conn, header[7:].strip()) if header.startswith("Bearer ") else None
            if user and user["active"] and _may_log_in_here(user, site, store):
                g.user, g.permissions = user, permissions_of(g.db.conn, user)
            return
        if session.get("sid") or session.get("user"):  # "user": a cookie from before server-side sessions
            user = find_session_user(g.db.conn, session.get("sid", ""), _lifetime(), time.time())
            if user and user["active"] and _may_log_in_here(user, site, store):
                g.user, g.permissions = user, permissions_of(g.db.conn, user)
            else:  # logged out, ended by a password/role/active change at HQ, or too old
                session.clear()
        if request.method == "POST":
            token = session.get("csrf")
            if not token or not secrets.compare_digest(token, request.form.get("csrf_token", "")):
                abort(400, "The form expired or did not come from this site: reload the page and try again.")

    @app.teardown_request
    def close_db(exc):
        db = g.pop("db", None)
        if db is not None:
            db.close()

    @app.context_processor
    def page_context():
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return {"csrf_token": session["csrf"], "user": g.get("user"), "can": lambda p: p in g.get("permissions", ()),
                "site": site, "store": store, "title": title}

    @app.after_request
    def headers(response):
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        return response

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(401)
    @app.errorhandler(405)
    @app.errorhandler(415)
    def error_page(error):
        if is_api():
            return {"error": error.description if error.code in (400, 415) else error.name}, error.code
        headings = {400: "That request could not be used", 403: "You may not do that",
                    404: "Not found", 401: "Log in first", 405: "Not allowed here", 415: "Unsupported"}
        messages = {403: "Your user has no permission for this page. Ask an administrator if you need it.",
                    404: "There is nothing at this address (a customer code may be mistyped)."}
        message = messages.get(error.code) or error.description
        return render_template("error.html", code=error.code, heading=headings[error.code], message=message), error.code

    @app.template_filter("when")
    def when(value) -> str:
        """ISO stamps (and epoch seconds) as people read them: 2026-11-25 15:39 (UTC)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return time.strftime("%Y-%m-%d %H:%M", time.gmtime(value))
        return value[:16].replace("T", " ") if value and len(value) >= 16 and value[10] == "T" else (value or "")

    app.register_blueprint(auth_blueprint())
    return app


def health_blueprint(links: dict[str, bool], facts: Callable[[Any], dict],
                     figures: tuple[str, ...] = ("last_seq",)) -> Blueprint:
    """``GET /healthz``. ``links`` maps each broker link the site has to whether it
    is required: a required link down (or an unreadable database) answers 503, a
    link the site works without answers 200 with status "degraded". ``facts(db)``
    adds the site's figures (``last_seq``, ``outbox``...) and may put keys under
    ``"database"`` and a list under ``"problems"``. The links themselves come from
    the running service (``app.extensions["lanehub"]["links"]``, set by
    ``WebService``); without one they are reported as unknown. ``figures`` are
    the keys ``facts`` gives, answered as null when the database cannot be read."""
    bp = Blueprint("health", __name__)

    @bp.route("/healthz")
    @requires(PUBLIC)
    def healthz() -> Response:
        ext = _ext()
        problems: list[str] = []
        body: dict[str, Any] = {"status": "ok", "site": ext["site"]}
        if ext["store"]:
            body["store"] = ext["store"]
        current = ext.get("links")
        states = None
        if current is not None:
            try:
                states = current()
            except Exception:  # never let the probe itself fail
                log.exception("healthz: the service's link states could not be read")
        body["service"] = states is not None
        unknown = "no service runs in this process" if current is None else "the service's link states could not be read"
        required_down = False
        body["broker_links"] = {}
        for name, required in links.items():
            state = (states or {}).get(name)
            if state is None:
                body["broker_links"][name] = {"connected": None, "since": None, "required": required,
                                              "reason": f"unknown: {unknown}"}
                problems.append(f"{name}: unknown ({unknown})")
                continue
            body["broker_links"][name] = {"connected": state.connected, "since": _iso(state.since),
                                          "reason": state.reason, "required": required, "failures": state.failures}
            if not state.connected:
                required_down = required_down or required
                problems.append(f"{name} down since {_iso(state.since)}{'' if required else ' (not required)'}: "
                                f"{state.reason}")
        database: dict[str, Any] = {"ok": False}
        try:
            db = ext["open_db"]()
            try:
                extra = facts(db)
            finally:
                db.close()
        except Exception as exc:
            database["error"] = f"{type(exc).__name__}: {exc}"[:300]
            problems.append(f"database cannot be read: {database['error']}")
            body.update(dict.fromkeys(figures))
        else:
            database = {"ok": True} | extra.pop("database", {})
            problems += extra.pop("problems", [])
            body.update(extra)
        body["database"] = database
        if required_down or not database["ok"]:
            body["status"] = "down"
        elif problems:
            body["status"] = "degraded"
        body["problems"] = problems
        body["checked_at"] = _iso(time.time())
        response = jsonify(body)
        response.status_code = 503 if body["status"] == "down" else 200
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def is_api() -> bool:
    return request.path.startswith("/api/")


def _may_log_in_here(user: dict, site: str, store: str) -> bool:
    """HQ users (no store) may log in everywhere; a store's user only at that store."""
    return not user["store"] or (site == "store" and user["store"] == store)


def auth_blueprint() -> Blueprint:
    bp = Blueprint("auth", __name__)

    @bp.route("/login", methods=["GET", "POST"])
    @requires(PUBLIC)
    def login():
        ext = _ext()
        error = None
        username = ""
        if request.method == "POST":
            username = request.form.get("username", "").strip().lower()
            password = request.form.get("password", "")
            address = request.remote_addr or ""
            if ext["throttle"].blocked(username, address):
                error = "Too many failed attempts: wait ten minutes, or ask an administrator."
            else:
                user = find_user(g.db.conn, username)
                allowed = bool(user and user["active"] and _may_log_in_here(user, ext["site"], ext["store"]))
                # Always one hash check, whether the name exists, may log in here or not.
                matches = check_password_hash(user["password_hash"] if user else ext["dummy_hash"], password)
                if allowed and matches:
                    ext["throttle"].succeeded(username, address)
                    session.clear()  # nothing from before the login carries over
                    begin_session(g.db, user)
                    target = request.args.get("next", "")
                    return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("home"))
                ext["throttle"].failed(username, address)
                error = "Wrong user name or password."
        return render_template("login.html", error=error, username=username), (401 if error else 200)

    @bp.route("/logout", methods=["POST"])
    @requires(PUBLIC)
    def logout():
        if session.get("sid"):
            with transaction(g.db.conn):
                end_session(g.db.conn, session["sid"])  # every copy of this cookie stops working
        session.clear()
        flash("You have logged out.")
        return redirect(url_for("auth.login"))

    return bp


def _ext() -> dict:
    return current_app.extensions["lanehub"]


@contextlib.contextmanager
def saved_upload(upload, default_name: str):
    """An uploaded file saved under its (made safe) name in a temporary directory,
    removed afterwards: importers read paths, and their messages name the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (secure_filename(upload.filename or "") or default_name)
        upload.save(path)
        yield path


def page_args(default_size: int = 50) -> tuple[int, int]:
    """(page, size) from the query string, bounded."""
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    return page, default_size


def serve_in_thread(app: Flask, host: str, port: int):
    """Serve ``app`` with werkzeug's threaded server; returns the server (call ``shutdown()``)."""
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    return server
