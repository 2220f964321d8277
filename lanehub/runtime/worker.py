"""A worker thread with a queue: where slow work (SQLite, requests) happens.

paho's network thread only enqueues (docs/benchmarks.md: a slow on_message
stops keepalives, and publishing-and-waiting from a callback deadlocks).
Each worker owns its SQLite connection, so connections never cross threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

log = logging.getLogger(__name__)

_STOP = object()


class Worker:
    def __init__(self, name: str, setup: Callable[[], None] | None = None, teardown: Callable[[], None] | None = None):
        self.name = name
        self._queue: queue.Queue = queue.Queue()
        self._setup = setup
        self._teardown = teardown
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stop = threading.Event()

    def start(self) -> "Worker":
        self._thread.start()
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._queue.put((fn, args, future))
        return future

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
        """Run ``fn`` on the worker and wait for its result (never from the worker itself)."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        return self.submit(fn, *args).result(timeout)

    def every(self, seconds: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` on this worker every ``seconds`` (skipped while a previous run is queued)."""
        pending = threading.Event()

        def tick() -> None:
            pending.clear()
            fn()

        def loop() -> None:
            while not self._stop.wait(seconds):
                if not pending.is_set():
                    pending.set()
                    self.submit(tick)

        threading.Thread(target=loop, name=f"{self.name}-timer", daemon=True).start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._queue.put(_STOP)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        if self._setup:
            self._setup()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                fn, args, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                started = time.monotonic()
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # logged, never fatal to the worker
                    log.exception("%s: %s failed", self.name, getattr(fn, "__name__", fn))
                    future.set_exception(exc)
                elapsed = time.monotonic() - started
                if elapsed > 2:
                    log.info("%s: %s took %.1fs", self.name, getattr(fn, "__name__", fn), elapsed)
        finally:
            if self._teardown:
                self._teardown()
