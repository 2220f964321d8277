"""A Mosquitto broker as a process, on a free loopback port: for tests and the demo.

(Its password and ACL files are ``lanehub.protocol.acl``'s.)
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from lanehub.protocol.acl import (
    HQ_LISTENER_SETTINGS,
    STORE_BROKER_MESSAGE_LIMIT,
    broker_password_hash,
    max_packet_size,
    password_file,
    write_atomic,
)

_handed_out: set[int] = set()


# Below Linux's ephemeral range (32768-60999), so an outgoing connection never
# holds a port a slice picked.
SLICED_PORTS = range(10_000, 32_000)


def _port_slice() -> range | None:
    """``LANEHUB_PORT_SLICE=i/n``: this process picks ports only in its own i-th
    part of SLICED_PORTS, so parallel test workers never pick the same free port."""
    index, _, count = os.environ.get("LANEHUB_PORT_SLICE", "").partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        return None
    size = len(SLICED_PORTS) // int(count)
    start = SLICED_PORTS.start + int(index) * size
    return range(start, start + size)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on, never one this process handed out before:
    a chain picks its brokers' and pages' ports before any of them binds, and the
    kernel may offer a just-released port twice."""
    ports = _port_slice()
    while True:
        if ports is not None:
            port = random.choice(ports)
            if port in _handed_out or not _bindable(port):
                continue
        else:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")


class Mosquitto:
    """A real Mosquitto process on a loopback port with its own files.

    ``users`` maps user to plain password (hashed into the password file);
    ``acl`` is the ACL file's text (None: no ACL). ``anonymous`` allows
    clients without credentials (the demo's store brokers on loopback).
    ``username_as_clientid``: the HQ broker's listener (``HQ_LISTENER_SETTINGS``).
    """

    def __init__(self, workdir: str | Path, port: int | None = None, *, users: dict[str, str] | None = None,
                 acl: str | None = None, anonymous: bool = False, autosave_interval: int = 1800,
                 tls: dict[str, str] | None = None, username_as_clientid: bool = False,
                 message_size_limit: int = STORE_BROKER_MESSAGE_LIMIT):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = dict(users or {})
        self.acl = acl
        self.anonymous = anonymous
        self.autosave_interval = autosave_interval
        # {"cafile", "certfile", "keyfile"}: the listener speaks TLS only.
        self.tls = tls
        self.username_as_clientid = username_as_clientid
        self.message_size_limit = message_size_limit  # HQ_BROKER_MESSAGE_LIMIT for an HQ broker
        self.process: subprocess.Popen | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.passwd_path = self.workdir / "passwd"
        self.acl_path = self.workdir / "acl"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "mosquitto.log"
        self.pid_path = self.workdir / "mosquitto.pid"
        self.data_dir.mkdir(exist_ok=True)

    def write_files(self) -> None:
        lines = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            *([f"cafile {self.tls['cafile']}", f"certfile {self.tls['certfile']}", f"keyfile {self.tls['keyfile']}",
               "tls_version tlsv1.2", "require_certificate false"] if self.tls else []),
            *(HQ_LISTENER_SETTINGS if self.username_as_clientid else []),
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            f"autosave_interval {self.autosave_interval}",
            "set_tcp_nodelay true",
            # The default (1000) silently drops QoS 1 messages queued for a busy or
            # restarting client: a burst of scans for a restarting edge is a lost sale.
            "max_queued_messages 100000",
            f"message_size_limit {self.message_size_limit}",
            f"max_packet_size {max_packet_size(self.message_size_limit)}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")
        # The password and ACL files are written once; after that they belong to
        # whoever manages them (HQ adds stores), and a restart keeps their edits.
        if self.users or not self.anonymous:
            if not self.passwd_path.exists():
                write_atomic(self.passwd_path, password_file({u: broker_password_hash(p) for u, p in self.users.items()}), 0o600)
            lines.append(f"password_file {self.passwd_path}")
        if self.acl is not None and not self.acl_path.exists():
            write_atomic(self.acl_path, self.acl, 0o600)
        if self.acl_path.exists():
            lines.append(f"acl_file {self.acl_path}")
        write_atomic(self.conf_path, "\n".join(lines) + "\n", 0o600)

    def start(self, timeout: float = 10) -> "Mosquitto":
        if self.process and self.process.poll() is None:
            return self
        self.write_files()
        log = open(self.workdir / "stdout.log", "ab")
        # Its own session, as lanehub/chain/processes.py's: a terminal's Ctrl-C must not stop
        # the broker before the processes that publish their last status on it.
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf_path)], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        # Mosquitto writes pid_file only when it daemonizes, so we write it.
        self.pid_path.write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.tail()}")
            if port_open(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not open port {self.port}: {self.tail()}")

    @property
    def reload_command(self) -> str:
        """A shell command that makes this broker re-read its files (for hq.toml)."""
        return f"kill -HUP $(cat {self.pid_path})"

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._wait_port_closed()

    def kill(self) -> None:
        """SIGKILL: anything not yet autosaved is lost, as after a power cut."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._wait_port_closed()

    def restart(self) -> "Mosquitto":
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.poll() is None)

    def _wait_port_closed(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def tail(self, lines: int = 20) -> str:
        out = []
        for path in (self.log_path, self.workdir / "stdout.log"):
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(out)
