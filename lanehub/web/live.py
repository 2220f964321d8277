"""Live pages without reloads: Server-Sent Events (docs/decisions.md D42).

A live part of a page is a fragment its view can render on its own. The page
marks it ``<div data-live="{{ url_for(...) }}">`` and loads ``live.js``; the
browser's ``EventSource`` opens the fragment's stream, and each event's data
replaces the element's content. ``stream()`` sends the fragment at once and
then whenever it renders differently: woken by a ``Changes`` the part of the
process that changes the data bumps (the till, within milliseconds), else by
re-rendering every ``every`` seconds (data another process writes).

Why SSE and not MQTT over WebSockets from the store broker: the page's
session, CSRF and permission checks stay the only door (a browser would
otherwise need broker credentials of its own and an ACL per user), it works
through any HTTP proxy, and the browser reconnects on its own. A stream ends
after ``LIFETIME`` seconds; the browser's reconnect runs the route's
permission check again, so a revoked session stops seeing updates soon.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

from flask import Response, current_app, g, request, stream_with_context

LIFETIME = 300.0  # seconds a stream stays open before the browser reconnects
KEEPALIVE = 15.0  # seconds between comments on a quiet stream (finds closed browsers)
RETRY_MS = 1000  # the browser's reconnect delay


class Changes:
    """A version number a page's streams wait on: ``changed()`` wakes them all."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.version = 0

    def changed(self) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """The version once it is not ``seen`` any more, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen, timeout)
            return self.version


def event(data: str, name: str = "") -> str:
    """One SSE event: every line of ``data`` on a ``data:`` line of its own."""
    lines = [f"event: {name}"] if name else []
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


def events(render: Callable[[], str], *, changes: Changes | None = None, every: float = 2.0,
           lifetime: float = LIFETIME, stopped: threading.Event | None = None) -> Iterator[str]:
    """The stream's text: ``render()`` now, then each time it differs."""
    yield f"retry: {RETRY_MS}\n\n"
    last = None
    version = changes.version if changes else 0
    quiet_since = started = time.monotonic()
    while time.monotonic() - started < lifetime and not (stopped and stopped.is_set()):
        text = render()
        if text != last:
            last = text
            quiet_since = time.monotonic()
            yield event(text)
        elif time.monotonic() - quiet_since >= KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": still here\n\n"
        if changes is not None:
            version = changes.wait(version, every)
        elif stopped is not None:
            stopped.wait(every)
        else:
            time.sleep(every)


def stream(render: Callable[..., str], *, open_db: Callable[[], Any] | None = None, changes: Changes | None = None,
           every: float = 2.0, lifetime: float = LIFETIME, stopped: threading.Event | None = None) -> Response:
    """An SSE response for a view. With ``open_db``, ``render(db)`` runs on one
    database connection the stream opens for itself and closes at its end: the
    request's ``g.db`` is closed by its teardown before a streamed body runs."""

    def body() -> Iterator[str]:
        if open_db is None:
            yield from events(render, changes=changes, every=every, lifetime=lifetime, stopped=stopped)
            return
        db = open_db()
        try:
            yield from events(lambda: render(db), changes=changes, every=every, lifetime=lifetime, stopped=stopped)
        finally:
            db.close()

    response = Response(stream_with_context(body()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not hold events back
    return response


def live_view(render: Callable[[Any], str], *, every: float = 2.0, changes: Changes | None = None) -> Response | str:
    """A live part's route: for EventSource (``Accept: text/event-stream``) a stream of
    ``render(db)`` on the site's database; for anything else (a plain GET, a route
    walk) the fragment once, from the request's ``g.db``."""
    if request.accept_mimetypes.best == "text/event-stream":
        return stream(render, open_db=current_app.extensions["lanehub"]["open_db"], changes=changes, every=every)
    return render(g.db)
