"""A real PostgreSQL for the tests: a database of this test run's own.

``make test`` makes sure a cluster is online and that the user running the
tests may create databases (scripts/test-postgres.sh). The server is found with
Debian's ``pg_lsclusters`` (the first online cluster, over its local socket) or
named by ``LANEHUB_TEST_POSTGRES`` (libpq key=value words without ``dbname``,
e.g. ``host=127.0.0.1 port=5432 user=postgres``). Each pytest process makes its
own database and drops it when it ends, so runs and xdist workers never share one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest

SOCKET_DIR = "/var/run/postgresql"
# The backends of HQ's storage: pytestmark = pytest.mark.parametrize("hq_backend", HQ_BACKENDS).
HQ_BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on the test server, by libpq words and by SQLAlchemy URL."""

    server: dict[str, str]  # host, port, user... (no dbname)
    name: str

    @property
    def conninfo(self) -> str:
        return " ".join(f"{key}={value}" for key, value in {**self.server, "dbname": self.name}.items())

    @property
    def url(self) -> str:
        """``postgresql+psycopg://`` as lanehub's importers and exports take it."""
        user = quote(self.server["user"]) + "@" if "user" in self.server else ""
        query = "&".join(f"{key}={quote(value)}" for key, value in self.server.items() if key not in ("user", "password"))
        password = f":{quote(self.server['password'])}" if "password" in self.server else ""
        if password:
            user = user.removesuffix("@") + password + "@"
        return f"postgresql+psycopg://{user}/{self.name}" + (f"?{query}" if query else "")


def server_words() -> dict[str, str]:
    named = os.environ.get("LANEHUB_TEST_POSTGRES", "").strip()
    if named:
        return dict(word.split("=", 1) for word in named.split())
    if not shutil.which("pg_lsclusters"):
        raise RuntimeError("no PostgreSQL here: `make test` installs and starts it (scripts/test-postgres.sh), "
                           "or set LANEHUB_TEST_POSTGRES")
    for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.splitlines():
        version, cluster, port, status, *_ = line.split()
        if status == "online":
            return {"host": SOCKET_DIR, "port": port}
    raise RuntimeError("no PostgreSQL cluster is online: `make test` starts one (scripts/test-postgres.sh)")


@pytest.fixture(scope="session")
def postgres() -> PostgresDatabase:
    import psycopg

    server = server_words()
    name = f"lanehub_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = " ".join(f"{key}={value}" for key, value in {**server, "dbname": "postgres", "connect_timeout": "5"}.items())
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise RuntimeError(f"cannot create a test database on PostgreSQL ({admin}): {exc}") from exc
    yield PostgresDatabase(server, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(database: PostgresDatabase) -> str:
    """The database as a libpq URI (``postgresql:///name?host=...``)."""
    return f"postgresql:///{database.name}?" + "&".join(f"{key}={quote(value, safe='')}" for key, value in database.server.items())


def hq_url(database: PostgresDatabase, schema: str) -> str:
    """``[hq] db`` for HQ's storage in ``schema`` of ``database`` (a libpq URI)."""
    words = {**database.server, "options": f"-csearch_path={schema}"}
    return f"postgresql:///{database.name}?" + "&".join(f"{key}={quote(value, safe='')}" for key, value in words.items())


def new_hq_schema(postgres: PostgresDatabase) -> str:
    """A new empty schema in the test database; returns ``[hq] db`` naming it."""
    import psycopg

    schema = f"hq_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return hq_url(postgres, schema)


@pytest.fixture
def postgres_hq_db(postgres: PostgresDatabase) -> str:
    """``[hq] db`` naming a schema of its own on the test server: an empty HQ database."""
    import psycopg

    url = new_hq_schema(postgres)
    yield url
    schema = url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(postgres.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def hq_target(request, tmp_path) -> str:
    """``[hq] db`` on each backend in turn: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "hq.db")
    return request.getfixturevalue("postgres_hq_db")
