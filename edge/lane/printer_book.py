"""Receipts waiting for their printers, and the device bridges' statuses that route
them (docs/protocol.md §21): the lane worker's bookkeeping beside the tickets, each
write its own short transaction."""

from __future__ import annotations

import json
import sqlite3
import time

from lanehub.replication.sqlite import transaction


class PrinterBook:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def due_jobs(self, retry_after: float) -> list[tuple[str, str, str]]:
        """(lane, device, job) of receipts not yet printed, not sent in ``retry_after`` s.
        Without the receipts: a job with no printer is due every time it is asked
        (every second), and only the ones sent need theirs (``job_receipt``)."""
        rows = self.conn.execute(
            "SELECT lane, device, job FROM print_jobs WHERE status = 'pending' AND last_sent <= ? ORDER BY created_at",
            (time.time() - retry_after,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def job_receipt(self, job: str) -> dict | None:
        """A print job's receipt as stored (a ``Receipt``'s JSON object, sent as it is)."""
        row = self.conn.execute("SELECT receipt FROM print_jobs WHERE job = ?", (job,)).fetchone()
        return json.loads(row[0]) if row else None

    def route_job(self, job: str, device: str) -> str:
        """Give a receipt that had no printer its printer (when there is one now)."""
        if device:
            with transaction(self.conn):
                self.conn.execute("UPDATE print_jobs SET device = ? WHERE job = ? AND device = ''", (device, job))
        return device

    def job_sent(self, job: str) -> None:
        with transaction(self.conn):
            self.conn.execute("UPDATE print_jobs SET last_sent = ?, attempts = attempts + 1 WHERE job = ?", (time.time(), job))

    def job_result(self, job: str, ok: bool, status: str, error: str) -> bool:
        """Record a printer's result; a printed job is done, a failed one is resent later."""
        with transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE print_jobs SET status = CASE WHEN ? THEN 'printed' ELSE status END, printed_at = CASE WHEN ? "
                "THEN ? ELSE printed_at END, printer_status = ?, error = ? WHERE job = ? AND status = 'pending'",
                (ok, ok, time.time(), status, error or "", job))
        return cursor.rowcount > 0

    def record_device(self, device: str, kind: str, lane: str, state: str, detail: str) -> bool:
        """Keep a device's status; True when it changed (``updated_at`` is when it did:
        a bridge repeating its status every heartbeat writes nothing)."""
        with transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO device_status (device, kind, lane, state, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(device) DO UPDATE SET kind = excluded.kind, lane = excluded.lane, state = excluded.state, "
                "detail = excluded.detail, updated_at = excluded.updated_at "
                "WHERE (kind, lane, state, detail) IS NOT (excluded.kind, excluded.lane, excluded.state, excluded.detail)",
                (device, kind, lane, state, detail, time.time()))
        return cursor.rowcount > 0

    def online_devices(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT device FROM device_status WHERE state = 'online'")]

    def mark_device_silent(self, device: str) -> None:
        with transaction(self.conn):
            self.conn.execute("UPDATE device_status SET state = 'offline', detail = 'silent', updated_at = ? "
                              "WHERE device = ? AND state = 'online'", (time.time(), device))
