"""Live page parts over Server-Sent Events (lanehub/web/live.py), through a real
HTTP server: the fragment at once, again when it changes (woken at once by a
``Changes``, else on the next re-render), nothing while it stays the same, and
the stream ends after its lifetime so the browser reconnects."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from flask import Flask
from helpers import read_events

from lanehub.chain.mosquitto import free_port
from lanehub.web.app import serve_in_thread
from lanehub.web.live import Changes, event, events, stream


@pytest.fixture
def site():
    app = Flask(__name__)
    state = {"text": "one", "changes": Changes()}

    @app.route("/woken")
    def woken():
        return stream(lambda: state["text"], changes=state["changes"], every=30, lifetime=5)

    @app.route("/polled")
    def polled():
        return stream(lambda: state["text"], every=0.2, lifetime=1)

    port = free_port()
    server = serve_in_thread(app, "127.0.0.1", port)
    yield state, f"http://127.0.0.1:{port}"
    server.shutdown()


def test_a_changed_fragment_is_sent_at_once_when_its_changes_are_bumped(site):
    state, url = site
    with urllib.request.urlopen(f"{url}/woken", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert read_events(response, 1) == ["one"]
        state["text"] = "two\nlines"
        started = time.monotonic()
        threading.Timer(0.2, state["changes"].changed).start()
        assert read_events(response, 1) == ["two\nlines"]
        assert time.monotonic() - started < 5  # woken, not the 30 s re-render


def test_an_unchanged_fragment_is_not_sent_again_and_the_stream_ends_after_its_lifetime(site):
    state, url = site
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/polled", timeout=10) as response:
        body = response.read().decode()  # re-rendered every 0.2 s for 1 s
    assert body.count("data: one") == 1
    assert body.startswith("retry: ")
    assert time.monotonic() - started < 5


def test_events_put_every_line_on_a_data_line():
    assert event("a\nb", "update") == "event: update\ndata: a\ndata: b\n\n"
    stopped = threading.Event()
    stopped.set()
    assert list(events(lambda: "x", stopped=stopped)) == ["retry: 1000\n\n"]
