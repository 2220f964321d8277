"""Crash-safe on-disk print-job spool for one printer.

Why: print jobs arrive over MQTT (at-least-once, so redeliveries happen) and
the box can lose power at any moment.  A job must survive a crash from the
moment ``add()`` returns True until ``done()`` has recorded it as printed,
and a redelivered job must not print twice.

Layout of ``directory``:

* ``<seq>_<job_id>.job`` -- one JSON file per pending job, ``seq`` is a
  zero-padded counter (pending order survives clock jumps on boxes without
  an RTC).  Written to ``.tmp-*`` first, fsynced, renamed, directory fsynced.
* ``printed.ids`` -- the ids of printed jobs, one per line, append + fsync;
  the last ``keep`` ids are remembered (compacted when twice that size).
* ``*.bad`` -- unreadable job files moved aside by ``pending()``.

``done()`` records the id *before* removing the job file, so a crash in
between leaves a job that ``pending()`` recognises as printed and discards.
A crash between printing and ``done()`` prints the receipt again on restart:
a duplicate receipt beats a lost one.  One ``Spool`` object per directory
(it is thread-safe; it is not safe against a second process).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path

from lanehub.protocol.lane import PrintJob

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_JOB_FILE = re.compile(r"(\d{10})_([A-Za-z0-9-]{1,64})\.job")
_PRINTED = "printed.ids"
_TMP_PREFIX = ".tmp-"


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` or raise ValueError: only letters, digits and '-', 1-64."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"invalid job id {job_id!r}")
    return job_id


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Spool:
    """Pending print jobs of one printer, plus the ids already printed."""

    def __init__(self, directory: Path, keep: int = 10_000):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._keep = keep
        self._lock = threading.Lock()
        self._printed: dict[str, None] = {}  # insertion-ordered: oldest first
        self._printed_lines = 0
        for entry in self.directory.iterdir():
            if entry.name.startswith(_TMP_PREFIX):  # a crash mid-add: never renamed
                entry.unlink(missing_ok=True)
        self._load_printed()

    # -- public API -------------------------------------------------------

    def add(self, job_id: str, receipt: dict) -> bool:
        """Spool a job durably; False (nothing written) if already spooled or printed."""
        check_job_id(job_id)
        if not isinstance(receipt, dict):
            raise TypeError("receipt must be a dict")
        data = PrintJob(job=job_id, receipt=receipt).to_json()  # the job as it came on the wire
        with self._lock:
            if job_id in self._printed:
                return False
            jobs = self._jobs()
            if any(existing == job_id for _, existing, _ in jobs):
                return False
            seq = max((s for s, _, _ in jobs), default=0) + 1
            final = self.directory / f"{seq:010d}_{job_id}.job"
            tmp = self.directory / f"{_TMP_PREFIX}{job_id}-{os.getpid()}"
            try:
                _write_synced(tmp, data)
                os.rename(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(self.directory)
            return True

    def pending(self) -> list[tuple[str, dict]]:
        """``(job_id, receipt)`` of the jobs still to print, oldest first.

        Unreadable job files are renamed to ``*.bad`` and skipped (with a
        warning); files of jobs already printed are removed.
        """
        out: list[tuple[str, dict]] = []
        with self._lock:
            for _seq, job_id, path in self._jobs():
                if job_id in self._printed or any(job_id == j for j, _ in out):
                    path.unlink(missing_ok=True)  # crash between done()'s two steps
                    continue
                try:
                    doc = json.loads(path.read_bytes())
                    if (not isinstance(doc, dict) or doc.get("job") != job_id
                            or not isinstance(doc.get("receipt"), dict)):
                        raise ValueError("not a print job document")
                except FileNotFoundError:
                    continue
                except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                    bad = path.with_name(path.name + ".bad")
                    log.warning("spool %s: corrupt job file %s (%s), moved to %s",
                                self.directory, path.name, exc, bad.name)
                    os.replace(path, bad)
                    continue
                out.append((job_id, doc["receipt"]))
        return out

    def done(self, job_id: str) -> None:
        """Record ``job_id`` as printed (durably), then drop its job file."""
        check_job_id(job_id)
        with self._lock:
            if job_id not in self._printed:
                self._append_printed(job_id)
            for _seq, existing, path in self._jobs():
                if existing == job_id:
                    path.unlink(missing_ok=True)

    def printed(self, job_id: str) -> bool:
        """True if ``job_id`` is among the last ``keep`` printed jobs."""
        check_job_id(job_id)
        with self._lock:
            return job_id in self._printed

    # -- internals --------------------------------------------------------

    def _jobs(self) -> list[tuple[int, str, Path]]:
        jobs = []
        for entry in os.scandir(self.directory):
            match = _JOB_FILE.fullmatch(entry.name)
            if match:
                jobs.append((int(match[1]), match[2], Path(entry.path)))
        jobs.sort()
        return jobs

    def _remember(self, job_id: str) -> None:
        self._printed.pop(job_id, None)
        self._printed[job_id] = None
        while len(self._printed) > self._keep:
            del self._printed[next(iter(self._printed))]

    def _load_printed(self) -> None:
        path = self.directory / _PRINTED
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        if raw and not raw.endswith(b"\n"):
            # Torn append (crash before fsync returned): drop the partial id
            # so the next append does not glue onto it.  Its job file is
            # still there, so that job is simply printed again.
            raw = raw[: raw.rfind(b"\n") + 1]
            with open(path, "r+b") as f:
                f.truncate(len(raw))
                os.fsync(f.fileno())
        lines = raw.decode("ascii", errors="replace").splitlines()
        self._printed_lines = len(lines)
        for line in lines:
            if _JOB_ID.fullmatch(line):
                self._remember(line)

    def _append_printed(self, job_id: str) -> None:
        path = self.directory / _PRINTED
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _write_all(fd, f"{job_id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.directory)
        self._remember(job_id)
        self._printed_lines += 1
        if self._printed_lines > 2 * self._keep:
            self._compact_printed()

    def _compact_printed(self) -> None:
        path = self.directory / _PRINTED
        tmp = self.directory / f"{_TMP_PREFIX}{_PRINTED}-{os.getpid()}"
        data = "".join(f"{job_id}\n" for job_id in self._printed).encode()
        _write_synced(tmp, data)
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        self._printed_lines = len(self._printed)


def _write_synced(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (the caller renames it into place)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
