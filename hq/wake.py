"""Writes made outside the HQ service reach the stores at once (D46).

The CLI, the HQ Manager pages, the API and imports write HQ's database from
processes (or threads) of their own. After each commit that logged a change,
their ``HQDatabase`` sends one datagram to the running service, which then
publishes the new changes on ``sync/down`` at once instead of finding them on
its next poll. The socket is in Linux's abstract namespace, named after the
database's real path (a file path could be longer than a socket name may be,
and nothing is left behind on disk); nobody listening is not an error: the
service's slower poll still finds the changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
TIMEOUT = 0.5  # how soon the listener notices stop()


def wake_address(db_path: str | Path) -> bytes:
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:32]
    return b"\0lanehub-hq-" + digest.encode()


def wake_service(db_path: str | Path) -> None:
    """Tell the HQ service on ``db_path`` that changes wait to be published."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"w", wake_address(db_path))
    except OSError:  # no service running, or its queue is full (it is awake then)
        pass


class WakeListener:
    """The service's side: ``on_wake()`` runs (on this listener's thread) after any
    datagrams that came while it was busy, once."""

    def __init__(self, db_path: str | Path, on_wake: Callable[[], object]):
        self.on_wake = on_wake
        self.sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(wake_address(db_path))
        except OSError as exc:  # another HQ process on this database has it: it publishes; this one polls
            log.warning("HQ: no wake-up socket for %s (%s); writes from other processes are found by polling",
                        db_path, exc)
            self.sock.close()
            self.sock = None
        self.thread = threading.Thread(target=self._run, name="hq-wake", daemon=True)
        self._stopped = threading.Event()

    def start(self) -> "WakeListener":
        if self.sock is not None:
            self.sock.settimeout(TIMEOUT)
            self.thread.start()
        return self

    def _run(self) -> None:
        sock = self.sock
        assert sock is not None
        while not self._stopped.is_set():
            try:
                sock.recv(16)
            except TimeoutError:
                continue
            except OSError:
                return
            self._drain(sock)
            try:
                self.on_wake()
            except Exception:
                log.exception("HQ: wake-up failed")

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        """The datagrams that came meanwhile: one wake-up for all of them. (Not
        MSG_DONTWAIT: a socket with a timeout waits for that timeout even so.)"""
        sock.setblocking(False)
        try:
            while True:
                sock.recv(16)
        except OSError:
            pass
        finally:
            sock.settimeout(TIMEOUT)

    def stop(self) -> None:
        self._stopped.set()
        if self.sock is not None:
            if self.thread.is_alive():
                self.thread.join(2)
            self.sock.close()
