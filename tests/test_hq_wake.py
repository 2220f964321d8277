"""Writes made outside the HQ service wake it (hq/wake.py, D46): one datagram
after each commit that logged a change, from this process or another one (the
CLI as a process), none before the commit and none from the service's own
writer; nobody listening is not an error."""

from __future__ import annotations

import threading

from hq.db import HQDatabase
from hq.wake import WakeListener, wake_service
from lanehub.chain.processes import run_lanehub
from lanehub.domain.codes import CodeFormat
from lanehub.replication.sqlite import transaction
from lanehub.runtime.config import dump_toml


class Wakes:
    def __init__(self, path):
        self.count = 0
        self.event = threading.Event()
        self.listener = WakeListener(path, self._woken).start()

    def _woken(self):
        self.count += 1
        self.event.set()

    def wait(self) -> bool:
        woken = self.event.wait(10)
        self.event.clear()
        return woken


def test_a_commit_that_logged_a_change_wakes_the_service_once_and_only_after_the_commit(tmp_path):
    path = tmp_path / "hq.db"
    db = HQDatabase(path, CodeFormat())
    wakes = Wakes(path)
    try:
        db.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t")
        assert wakes.wait() and wakes.count == 1
        with transaction(db.conn):
            db.create_customer({"first_name": "Bob", "last_name": "Lee"}, "t")
            db.create_customer({"first_name": "Cai", "last_name": "Lee"}, "t")
            assert not wakes.event.wait(0.3)  # nothing yet: a reader would not see the changes
        assert wakes.wait() and wakes.count == 2  # two changes, one commit, one wake-up
        db.conn.execute("SELECT 1")
        with transaction(db.conn):
            db.conn.execute("UPDATE meta SET value = value WHERE key = 'none'")  # a commit that logged nothing
        assert not wakes.event.wait(0.3)
    finally:
        wakes.listener.stop()
        db.close()


def test_the_services_own_writer_does_not_wake_it_and_nobody_listening_is_not_an_error(tmp_path):
    path = tmp_path / "hq.db"
    wake_service(path)  # no service: nothing happens
    writer = HQDatabase(path, CodeFormat(), wake=False)
    wakes = Wakes(path)
    try:
        writer.create_customer({"first_name": "Ann", "last_name": "Lee"}, "t")
        assert not wakes.event.wait(0.3)
    finally:
        wakes.listener.stop()
        writer.close()


def test_the_cli_in_another_process_wakes_the_service_on_that_database(tmp_path):
    path = tmp_path / "hq.db"
    config = tmp_path / "hq.toml"
    config.write_text(dump_toml({"hq": {"db": str(path)}}))
    HQDatabase(path, CodeFormat()).close()
    wakes = Wakes(path)
    other = Wakes(tmp_path / "other.db")  # a service on another database hears nothing
    try:
        run_lanehub("hq", "customers", "add", "--first-name", "Ann", "--last-name", "Lee", "-c", str(config))
        assert wakes.wait()
        assert other.count == 0
    finally:
        wakes.listener.stop()
        other.listener.stop()


def test_a_second_listener_on_the_same_database_is_refused_and_says_it_will_poll(tmp_path, caplog):
    path = tmp_path / "hq.db"
    first = Wakes(path)
    second = WakeListener(path, lambda: None).start()
    try:
        assert second.sock is None and "found by polling" in caplog.text
    finally:
        first.listener.stop()
        second.stop()
