"""Backups and restores of a site's SQLite database (HQ's or a store's edge).

**Backup** is online: SQLite's backup API copies the live database in one
read transaction, so the copy is the database as of one commit, and in WAL
mode the running service keeps writing meanwhile (its commits go to the WAL;
only checkpoints wait). The copy is written to a hidden temporary file next
to the destination, switched to a rollback journal (one self-contained file),
marked with what it is (``backup.*`` keys in ``meta``), checked with
``PRAGMA integrity_check``, fsynced and renamed into place (mode 0640). On
any error the temporary file is removed: a destination either holds a whole
checked backup or is left as it was.

**Restore** refuses while the database is open. A running service keeps
connections open all the time, and in WAL mode every open connection holds a
SHARED lock on the database file for as long as it is open (not only during
a transaction, as in rollback mode; ``BEGIN EXCLUSIVE`` alone would not do:
in WAL mode it excludes writers only, and an idle service writes nothing). A
connection in ``locking_mode=EXCLUSIVE`` therefore gets its ``BEGIN
EXCLUSIVE`` only when no other connection, in any process, has the file open.
A file SQLite cannot open any more (a bad disk) is probed for those locks
with a POSIX lock on SQLite's lock bytes instead, and never opened by SQLite
(so its WAL is kept as it is). Restore takes the lock (waiting at most
``LOCK_TIMEOUT``), keeps it while it copies and checks the backup, refuses
without ``--force`` to discard what only the current database holds (HQ: a
longer change log; edge: outbox changes HQ has not acknowledged),
checkpoints the old WAL into the old file, closes, and swaps: the old
database is kept as
``DB.before-restore-TIMESTAMP`` (a hard link, so the path never lacks a
database), stale ``-wal``/``-shm`` files are moved aside or removed, and the
checked copy replaces ``DB`` with one rename. Migrations are not run here: the
service runs them when it starts, so an older backup is migrated forward.

Restoring HQ over a database it can still read keeps that database's next
code number and code leases (numbers given out after the backup are in use
in the stores). Restoring an edge drops the leased code blocks of the copy (codes taken
from them after the backup reached HQ and must not be given out again; the
edge leases a new block when it connects) and the pending lease id (HQ may
have granted it after the backup). The edge then catches up from HQ's log and
resends its outbox; HQ applies each change once (by change id).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SQLITE_HEADER = b"SQLite format 3\x00"
# SQLite's lock bytes: pending, reserved and the shared range (https://www.sqlite.org/fileformat2.html#lockbyte).
PENDING_BYTE, LOCK_BYTES = 0x40000000, 512
LOCK_TIMEOUT = 2.0  # seconds to wait for the exclusive lock before saying the database is in use
MARKS = ("backup.site", "backup.store", "backup.taken_at", "backup.source")


class BackupError(Exception):
    """One line saying what went wrong; nothing half-written is left behind."""


@dataclass(frozen=True)
class Site:
    kind: str  # "hq" or "edge"
    store: str = ""  # the edge's store id

    @property
    def label(self) -> str:
        return "HQ" if self.kind == "hq" else f"edge {self.store}"

    @property
    def owner(self) -> str:
        return "HQ's" if self.kind == "hq" else f"store {self.store}'s"

    @property
    def stem(self) -> str:
        return "hq" if self.kind == "hq" else f"edge-{self.store}"

    @property
    def service(self) -> str:
        return f"lanehub {self.kind} run"


@dataclass
class Restored:
    db: Path
    backup: Path
    taken_at: str
    kept: Path | None
    notes: list[str] = field(default_factory=list)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ro_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def _reason(exc: BaseException) -> str:
    """An OSError or SQLite error as a few words for a one-line message."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return "no space left (disk full or file too large)"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "permission denied" if exc.errno != errno.EROFS else "read-only file system"
        return exc.strerror or str(exc)
    text = str(exc)
    if "disk is full" in text:
        return "no space left (the disk is full)"
    if "disk I/O error" in text:
        return "disk I/O error (a write failed: disk full, quota or a bad disk)"
    return text


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


def _sidecars(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("-journal", "-wal", "-shm")]


def _check_space(directory: Path, needed: int) -> None:
    """Fail before copying when the copy cannot fit (a backup is at most the database
    plus its WAL; a restored copy is the backup's size)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise BackupError(f"not enough space in {directory}: {free / 1e6:.1f} MB free, "
                          f"the database takes up to {needed / 1e6:.1f} MB")


def _temp_next_to(target: Path, mode: int) -> Path:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
    finally:
        os.close(fd)
    return tmp


# --- what a database is ------------------------------------------------------------------

def site_kind(conn: sqlite3.Connection) -> str | None:
    """"hq", "edge", or None for a database that is neither."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if {"changes", "stores", "meta"} <= tables:
        return "hq"
    if {"outbox", "code_blocks", "meta"} <= tables:
        return "edge"
    return None


def _meta(conn: sqlite3.Connection, key: str, default: str = "") -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, value))


def _integrity_problem(conn: sqlite3.Connection) -> str | None:
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
    return None if rows == ["ok"] else "; ".join(rows)


def _kind_name(kind: str) -> str:
    return "HQ's database" if kind == "hq" else "a store's (edge) database"


def _other_store(conn: sqlite3.Connection, store: str) -> str | None:
    """Which other store an edge database belongs to, when it says so: the mark a
    backup carries, else the origin of its own changes and its ticket numbers
    (a database without any of these holds nothing store-specific)."""
    mark = _meta(conn, "backup.store")
    if mark and mark != store:
        return mark
    for table in ("outbox", "rejections"):
        for (text,) in conn.execute(f"SELECT change FROM [{table}]"):
            try:
                origin = json.loads(text).get("origin")
            except (ValueError, AttributeError):
                continue
            if origin and origin != store:
                return origin
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "tickets" in tables:
        row = conn.execute("SELECT ticket FROM tickets WHERE substr(ticket, 1, ?) != ? LIMIT 1",
                           (len(store) + 1, f"{store}-")).fetchone()
        if row:
            return f"the one of ticket {row[0]}"
    return None


# --- backup -----------------------------------------------------------------------------------

def backup_target(dest: str | Path, site: Site) -> Path:
    """DEST itself, or a timestamped file in it when DEST is a directory."""
    text = str(dest)
    path = Path(dest)
    if path.is_dir() or text.endswith(os.sep):
        return path / f"{site.stem}-{_stamp()}.db"
    return path


def _refuse_postgres(db_path: str | Path, what: str) -> None:
    if str(db_path).startswith(("postgresql:", "postgres:")):
        raise BackupError(f"HQ's database is on PostgreSQL: {what} it with PostgreSQL's own tools "
                          "(pg_dump and pg_restore, or base backups with WAL archiving), not lanehub")


def backup_database(db_path: str | Path, dest: str | Path, site: Site) -> tuple[Path, int]:
    """Copy the live database to DEST; returns the file written and its size."""
    _refuse_postgres(db_path, "back up")
    db = Path(db_path)
    if not db.is_file():
        raise BackupError(f"the {site.label} database {db} does not exist")
    target = backup_target(dest, site)
    if not target.parent.is_dir():
        what = "is not a directory" if target.parent.exists() else "does not exist"
        raise BackupError(f"cannot write the backup {target}: {target.parent} {what}")
    live = {db.resolve(), *(p.resolve() for p in _sidecars(db))}
    if target.resolve() in live:
        raise BackupError(f"{target} is the database itself; give another destination")
    _check_space(target.parent, sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()))
    try:
        tmp = _temp_next_to(target, 0o640)
    except OSError as exc:
        raise BackupError(f"cannot write the backup in {target.parent}: {_reason(exc)}") from None
    try:
        try:
            source = sqlite3.connect(_ro_uri(db), uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot open the {site.label} database {db}: {_reason(exc)}") from None
        copy = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            try:
                kind = site_kind(source)
            except sqlite3.DatabaseError as exc:
                raise BackupError(f"cannot read the {site.label} database {db}: {_reason(exc)}") from None
            if kind is None:
                raise BackupError(f"{db} is not a lanehub database")
            if kind != site.kind:
                raise BackupError(f"{db} is {_kind_name(kind)}, not {site.owner}")
            # One step (pages=-1): one read transaction, one commit's state. A stepped
            # copy restarts whenever the service writes, which it may never stop doing.
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal to carry along
            copy.execute("BEGIN IMMEDIATE")
            for key, value in (("backup.site", site.kind), ("backup.store", site.store),
                               ("backup.taken_at", _now_iso()), ("backup.source", str(db.resolve()))):
                _set_meta(copy, key, value)
            copy.execute("COMMIT")
            problem = _integrity_problem(copy)
            if problem:
                raise BackupError(f"the copy of {db} failed its integrity check: {problem}")
        finally:
            copy.close()
            source.close()
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    except BackupError:
        raise
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"backup of {db} to {target} failed: {_reason(exc)}") from None
    finally:
        _remove(tmp, *_sidecars(tmp))  # gone already once renamed
    return target, target.stat().st_size


# --- restore ---------------------------------------------------------------------------------

def _locked_by_another_process(db: Path) -> bool:
    """Whether another process holds one of SQLite's locks on the file (every open
    WAL connection holds a SHARED one). Tried with a non-blocking POSIX write lock
    on SQLite's lock bytes, released at once; for files SQLite cannot open."""
    fd = os.open(db, os.O_RDWR)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, LOCK_BYTES, PENDING_BYTE, os.SEEK_SET)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, LOCK_BYTES, PENDING_BYTE, os.SEEK_SET)
        return False
    finally:
        os.close(fd)  # this process holds no other lock on the file yet


class _LiveLock:
    """An exclusive lock on the database being replaced, or a refusal while it is open."""

    def __init__(self, db: Path, site: Site):
        self.db = db
        self.conn: sqlite3.Connection | None = None
        self.readable = False
        if not db.exists():
            return
        in_use = BackupError(f"the {site.label} database {db} is in use: stop `{site.service}` "
                             f"(systemctl stop lanehub-{site.kind}) and any lanehub command using it first")
        with open(db, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
        if _locked_by_another_process(db):
            raise in_use
        if header != SQLITE_HEADER:
            return  # not a database any more: never opened with SQLite, its WAL is kept beside it
        conn = sqlite3.connect(str(db), timeout=LOCK_TIMEOUT, isolation_level=None)
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute("COMMIT")  # the lock stays: locking_mode=EXCLUSIVE
        except sqlite3.Error as exc:
            conn.close()
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in str(exc):
                raise in_use from None
            return  # unreadable (the reason to restore): replaced all the same
        self.conn = conn
        self.readable = True

    def query(self, sql: str, default: Any = None) -> Any:
        assert self.conn is not None  # asked only while readable, before release
        try:
            row = self.conn.execute(sql).fetchone()
            return row[0] if row else default
        except sqlite3.Error:
            return default

    def release(self) -> None:
        """Checkpoint the WAL into the old file and close (SQLite then removes the WAL)."""
        if self.conn is None:
            return
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # its WAL is kept beside it
        self.conn.close()
        self.conn = None


def _outbox_ids(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT id FROM outbox")}


def _prepare_edge(copy: sqlite3.Connection, notes: list[str]) -> None:
    left = copy.execute("SELECT count(*), coalesce(sum(end - next + 1), 0) FROM code_blocks WHERE next <= end").fetchone()
    copy.execute("DELETE FROM code_blocks")
    copy.execute("UPDATE meta SET value = '' WHERE key = 'pending_lease'")
    if left[0]:
        notes.append(f"dropped {left[0]} leased code block(s) ({left[1]} unused numbers, never given out again); "
                     "the edge leases a new block from HQ when it connects")
    pending = copy.execute("SELECT count(*) FROM outbox").fetchone()[0]
    notes.append(f"on start the edge catches up from HQ after seq {_meta(copy, 'last_seq', '0')} and resends "
                 f"{pending} outbox change(s); HQ applies each once")


def restore_database(backup_path: str | Path, db_path: str | Path, site: Site, force: bool = False) -> Restored:
    """Replace the (stopped) site's database with a checked copy of a backup."""
    _refuse_postgres(db_path, "restore")
    source_path, db = Path(backup_path), Path(db_path)
    if not source_path.is_file():
        raise BackupError(f"backup {source_path} does not exist")
    if not db.parent.is_dir():
        raise BackupError(f"directory {db.parent} of the {site.label} database does not exist")
    if db.exists() and os.path.samefile(source_path, db):
        raise BackupError(f"{source_path} is the {site.label} database itself")
    _check_space(db.parent, source_path.stat().st_size)
    lock: _LiveLock | None = None
    tmp: Path | None = None
    try:
        lock = _LiveLock(db, site)
        try:
            tmp = _temp_next_to(db, 0o640)
        except OSError as exc:
            raise BackupError(f"cannot write in {db.parent}: {_reason(exc)}") from None
        notes: list[str] = []
        try:
            source = sqlite3.connect(_ro_uri(source_path), uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot open the backup {source_path}: {_reason(exc)}") from None
        copy = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                problem = _integrity_problem(copy)
            except sqlite3.DatabaseError as exc:
                raise BackupError(f"{source_path} is not a usable database: {_reason(exc)}") from None
            if problem:
                raise BackupError(f"{source_path} failed its integrity check: {problem}")
            kind = site_kind(copy)
            if kind is None:
                raise BackupError(f"{source_path} is not a lanehub database")
            if kind != site.kind:
                raise BackupError(f"{source_path} is a copy of {_kind_name(kind)}, not of {site.owner}")
            if site.kind == "edge":
                other = _other_store(copy, site.store)
                if other:
                    raise BackupError(f"{source_path} is a backup of another store ({other}), not of {site.store}")
            taken_at = _meta(copy, "backup.taken_at", "unknown")
            if lock.readable and not force:
                _refuse_losing_newer(lock, copy, site)
            copy.execute("BEGIN IMMEDIATE")
            if site.kind == "edge":
                _prepare_edge(copy, notes)
            else:
                if lock.readable:
                    _carry_codes_forward(lock, copy, notes)
                head = copy.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
                notes.append(f"HQ's change log now ends at seq {head}: after the start, a store that `lanehub hq store "
                             "list` shows with a negative lag is ahead of HQ and must be reset (see the restore procedure)")
            copy.execute(f"DELETE FROM meta WHERE key IN ({', '.join('?' * len(MARKS))})", MARKS)
            _set_meta(copy, "restored.at", _now_iso())
            _set_meta(copy, "restored.backup_taken_at", taken_at)
            copy.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackupError(f"restoring {source_path} failed: {_reason(exc)}") from None
        finally:
            copy.close()
            source.close()
        _match_owner(tmp, db)
        _fsync(tmp)
        lock.release()
        kept = _swap(tmp, db)
        tmp = None
    except OSError as exc:
        raise BackupError(f"restoring {source_path} to {db} failed: {_reason(exc)}") from None
    finally:
        if lock is not None:
            lock.release()
        if tmp is not None:
            _remove(tmp, *_sidecars(tmp))
    return Restored(db, source_path, taken_at, kept, notes)


def _carry_codes_forward(lock: _LiveLock, copy: sqlite3.Connection, notes: list[str]) -> None:
    """Code numbers HQ gave out after the backup (its own customers', blocks leased to
    stores) are in use out there: the restored HQ keeps the replaced database's counter
    and leases, when it can read them, so it never gives a number out twice."""
    assert lock.conn is not None  # called only while the lock is readable
    try:
        current = int(lock.query("SELECT value FROM meta WHERE key = 'next_code'", 0) or 0)
        blocks = lock.conn.execute("SELECT lease, store, start, end, leased_at FROM code_blocks").fetchall()
    except (sqlite3.Error, ValueError):
        return
    restored = int(_meta(copy, "next_code", "1") or 1)
    if current > restored:
        _set_meta(copy, "next_code", str(current))
    added = 0
    for block in blocks:
        added += copy.execute("INSERT OR IGNORE INTO code_blocks (lease, store, start, end, leased_at) "
                              "VALUES (?, ?, ?, ?, ?)", tuple(block)).rowcount
    if current > restored or added:
        notes.append(f"kept from the replaced database: the next code number ({max(current, restored)}) and "
                     f"{added} code block(s) leased after the backup, so no code is given out twice")


def _refuse_losing_newer(lock: _LiveLock, copy: sqlite3.Connection, site: Site) -> None:
    """Refuse (without --force) to throw away what only the current database holds."""
    if site.kind == "hq":
        head = lock.query("SELECT coalesce(max(seq), 0) FROM changes", 0)
        backup_head = copy.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
        if head > backup_head:
            raise BackupError(
                f"the current HQ database is ahead of the backup (change log at seq {head}, the backup's at "
                f"{backup_head}): stores that applied the {head - backup_head} newer change(s) would be ahead of HQ "
                "and skip HQ's next changes, and their own accepted changes since the backup are lost at HQ; "
                "use --force to restore anyway, then reset every store (see the restore procedure)")
        return
    assert lock.conn is not None  # called only while the lock is readable
    try:
        unacked = _outbox_ids(lock.conn) - _outbox_ids(copy)
    except sqlite3.Error:
        return
    if unacked:
        raise BackupError(
            f"the current edge database holds {len(unacked)} change(s) HQ has not acknowledged that the backup "
            "lacks (sales, customers): start the edge until `lanehub edge status` shows pending_up 0, "
            "or use --force to restore anyway (they stay in the kept copy only)")


def _match_owner(tmp: Path, db: Path) -> None:
    """The restored file gets the replaced one's mode and owner (run as root, it would
    otherwise be root's, and the service user could not write it)."""
    ref = db if db.exists() else None
    if ref is not None:
        st = ref.stat()
        os.chmod(tmp, st.st_mode & 0o777)
        uid, gid = st.st_uid, st.st_gid
    else:
        st = db.parent.stat()
        uid, gid = st.st_uid, st.st_gid
    if os.geteuid() == 0:
        os.chown(tmp, uid, gid)


def _swap(tmp: Path, db: Path) -> Path | None:
    """Keep the old database aside, move its stale WAL (or hot journal) aside and drop its
    shared memory, so neither is ever read as the new file's, then rename the copy in."""
    kept = db.with_name(f"{db.name}.before-restore-{_stamp()}")
    n = 0
    while any(Path(f"{kept}{suffix}").exists() for suffix in ("", "-wal", "-journal")):  # two restores in a second
        n += 1
        kept = db.with_name(f"{db.name}.before-restore-{_stamp()}-{n}")
    for sidecar in ("-wal", "-journal"):  # left only when the old file could not be checkpointed
        old = Path(f"{db}{sidecar}")
        if old.exists():
            if old.stat().st_size:
                os.rename(old, f"{kept}{sidecar}")
            else:
                old.unlink()
    _remove(Path(f"{db}-shm"))
    replaced = db.exists()
    if replaced:
        try:
            os.link(db, kept)  # so the path holds a whole database until the rename below
        except OSError:
            os.rename(db, kept)
    os.replace(tmp, db)
    _fsync(db.parent)
    return kept if replaced else None


# --- the commands ------------------------------------------------------------------------------

def backup_commands(group, default_config: str, site_of) -> None:
    """Register `backup` and `restore` on ``group``; ``site_of(config_path)``
    returns ``(db_path, Site)`` (it stops on config errors itself)."""
    import click

    from lanehub.cli.shared import config_option

    @group.command("backup")
    @click.argument("dest", type=click.Path())
    @config_option(default_config)
    def backup(dest, config_path):
        """Copy the database to DEST while the service runs (DEST: a file, or a directory for a timestamped file)."""
        db, site = site_of(config_path)
        try:
            path, size = backup_database(db, dest, site)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{path} {size} bytes")

    @group.command("restore")
    @click.argument("backup_file", metavar="BACKUP", type=click.Path(dir_okay=False))
    @config_option(default_config)
    @click.option("--force", is_flag=True,
                  help="Restore even though the current database holds changes the backup lacks.")
    def restore(backup_file, config_path, force):
        """Replace the (stopped) service's database with BACKUP, keeping the old one aside."""
        db, site = site_of(config_path)
        try:
            done = restore_database(backup_file, db, site, force)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"restored {done.db} from {done.backup} (backup taken {done.taken_at})")
        if done.kept:
            click.echo(f"the replaced database is kept as {done.kept}")
        for note in done.notes:
            click.echo(note)
        click.echo(f"start the service (systemctl start lanehub-{site.kind}); it migrates the schema forward if needed")
