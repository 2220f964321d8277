"""Users, roles and permissions (docs/web.md), replicated from HQ to every
store like customers, so a store's admins can log in while HQ is away.

Built-in roles are code (they cannot drift between sites); custom roles are
replicated ``role`` records. A user has roles and, optionally, one store:
a store user can log in only at that store (and never at HQ).
"""

from __future__ import annotations

import re

from lanehub.domain.entity import MAX_TEXT, EntitySpec, check_bools, check_unknown, text_checks

PERMISSIONS = ("customers.view", "customers.create", "customers.edit", "rates.view", "rates.edit", "sales.track",
               "sync.view", "devices.view", "stores.manage", "users.manage", "customers.import", "lane.operate")
BUILTIN_ROLES = {
    "admin": PERMISSIONS,
    # stores.manage at a store: that store's settings (a store user never logs in at HQ).
    "store_manager": ("customers.view", "customers.create", "customers.edit", "rates.view", "sales.track",
                      "sync.view", "devices.view", "stores.manage", "lane.operate"),
    # lane.operate: sell on a store's till (its cashier screen).
    "cashier": ("customers.view", "customers.create", "sales.track", "lane.operate"),
    "viewer": ("customers.view", "rates.view", "sync.view", "devices.view"),
}
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def split(value: str) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def check_user_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"username": 32, "name": MAX_TEXT, "password_hash": 400, "roles": 400, "store": 32,
                                  "api_token_hash": 64, "session_epoch": 64})
    check_unknown(fields, USER.fields, "user", errors)
    if "username" in fields and "username" not in errors and not USERNAME_RE.match(fields["username"]):
        errors["username"] = "must be 2-32 lower-case letters, digits, '.', '_' or '-'"
    if "roles" in fields and "roles" not in errors:
        bad = [r for r in split(fields["roles"]) if not ROLE_RE.match(r)]
        if bad or not split(fields["roles"]):
            errors["roles"] = "must name at least one role"
    check_bools(fields, ("active",), errors)
    return errors


USER = EntitySpec(
    name="user",
    table="users",
    # session_epoch: HQ sets a new random value on a password, role or active change;
    # a web session made under another value has ended (see start_session).
    fields=("username", "name", "password_hash", "roles", "store", "active", "api_token_hash", "session_epoch"),
    defaults={"username": "", "name": "", "password_hash": "", "roles": "", "store": "", "active": True,
              "api_token_hash": "", "session_epoch": ""},
    bools=frozenset({"active"}),
    check_fields=check_user_fields,
    required=("username", "password_hash", "roles"),
    immutable=("username",),
    indexes=(("username",),),
)


def check_role_fields(fields: dict, codes=None) -> dict[str, str]:
    errors = text_checks(fields, {"name": 32, "permissions": 1000})
    check_unknown(fields, ("name", "permissions"), "role", errors)
    if "name" in fields and "name" not in errors and (not ROLE_RE.match(fields["name"]) or fields["name"] in BUILTIN_ROLES):
        errors["name"] = "must be a new lower-case name (letters, digits, '_')"
    if "permissions" in fields and "permissions" not in errors:
        unknown = [p for p in split(fields["permissions"]) if p not in PERMISSIONS]
        if unknown:
            errors["permissions"] = f"unknown permission(s): {', '.join(unknown)}"
    return errors


ROLE = EntitySpec(
    name="role",
    table="roles",
    fields=("name", "permissions"),
    defaults={"name": "", "permissions": ""},
    check_fields=check_role_fields,
    required=("name",),
    immutable=("name",),
    indexes=(("name",),),
)

USER_ENTITIES = (USER, ROLE)


def permissions_of(conn, user: dict) -> frozenset[str]:
    """What a user may do: the union of their roles' permissions."""
    granted: set[str] = set()
    for role in split(user.get("roles", "")):
        if role in BUILTIN_ROLES:
            granted.update(BUILTIN_ROLES[role])
            continue
        row = conn.execute("SELECT permissions FROM roles WHERE name = ?", (role,)).fetchone()
        if row:
            granted.update(p for p in split(row[0]) if p in PERMISSIONS)
    return frozenset(granted)


def token_hash(token: str) -> str:
    """API tokens are random (256 bits), so a plain SHA-256 is enough to store them."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def find_user_by_token(conn, token: str) -> dict | None:
    if not token:
        return None
    row = conn.execute("SELECT username FROM users WHERE api_token_hash = ?", (token_hash(token),)).fetchone()
    return find_user(conn, row[0]) if row else None


USER_COLUMNS = "u.id, u.username, u.name, u.password_hash, u.roles, u.store, u.active, u.session_epoch"


def find_user(conn, username: str) -> dict | None:
    row = conn.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?",
                       (username.strip().lower(),)).fetchone()
    return None if row is None else _user(row)


def _user(row) -> dict:
    return {"id": row[0], "username": row[1], "name": row[2], "password_hash": row[3], "roles": row[4],
            "store": row[5] or "", "active": bool(row[6]), "session_epoch": row[7] or ""}


# --- web sessions -------------------------------------------------------------------------
#
# The session cookie (Flask's, signed) carries only a random session id. Each
# site keeps its own ``web_sessions`` rows (HQ's and each store's database): a
# row is what makes a cookie work, so logging out (deleting the row) ends every
# copy of that cookie. The row also keeps the user's ``session_epoch`` from the
# time of login; HQ changes the epoch on a password, role or active change, and
# the replicated user record takes the new one to every store, which ends
# every session made before it. One primary-key lookup joined to the user per
# request, replacing the user lookup the page did anyway.

SESSION_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS web_sessions (id TEXT PRIMARY KEY, username TEXT NOT NULL, "
    "epoch TEXT NOT NULL, created_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_web_sessions_created_at ON web_sessions (created_at)",
)


def add_session_schema(db) -> None:
    """For a site's migration (HQ's and the edge's): the users' epoch column on
    databases made before it, and the site's own table of sessions."""
    if "session_epoch" not in db["users"].columns_dict:
        db.execute("ALTER TABLE users ADD COLUMN session_epoch TEXT")
    for statement in SESSION_SCHEMA:
        db.execute(statement)


def new_session_epoch() -> str:
    import secrets

    return secrets.token_hex(8)


def start_session(conn, user: dict, lifetime: float, now: float) -> str:
    """A new session for ``user``; returns its id, for the cookie (the table keeps
    only its hash). Sessions older than ``lifetime`` are dropped on the way."""
    import secrets

    session_id = secrets.token_urlsafe(32)
    conn.execute("DELETE FROM web_sessions WHERE created_at < ?", (now - lifetime,))
    conn.execute("INSERT INTO web_sessions (id, username, epoch, created_at) VALUES (?, ?, ?, ?)",
                 (token_hash(session_id), user["username"], user["session_epoch"], now))
    return session_id


def end_session(conn, session_id: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE id = ?", (token_hash(session_id),))


def find_session_user(conn, session_id: str, lifetime: float, now: float) -> dict | None:
    """The user of a live session: the row exists (not logged out), began less than
    ``lifetime`` ago and was made under the user's current epoch."""
    if not session_id:
        return None
    row = conn.execute(
        f"SELECT {USER_COLUMNS} FROM web_sessions s JOIN users u ON u.username = s.username "
        "WHERE s.id = ? AND s.created_at >= ? AND s.epoch = coalesce(u.session_epoch, '')",
        (token_hash(session_id), now - lifetime)).fetchone()
    return None if row is None else _user(row)
