"""Users and custom roles, managed at HQ and replicated to every store."""

from __future__ import annotations

import builtins
from typing import Any

from hq.db import HQDatabase
from lanehub.domain.catalogue import natural_key
from lanehub.domain.model import ENTITIES, ValidationError
from lanehub.domain.references import role_problem, store_problem
from lanehub.domain.users import BUILTIN_ROLES, new_session_epoch, split
from lanehub.replication.sqlite import transaction
from lanehub.web.app import hash_password

MIN_PASSWORD = 10


def user_key(username: str) -> str:
    return natural_key("user", username)


class HQUsers:
    def __init__(self, db: HQDatabase):
        self.db = db

    def _check_roles(self, roles: list[str]) -> None:
        known = set(BUILTIN_ROLES) | {r[0] for r in self.db.conn.execute("SELECT name FROM roles")}
        problem = role_problem(roles, known)
        if problem:
            raise ValidationError({"roles": problem})

    def add(self, username: str, password: str, roles: list[str], by: str, *, name: str = "", store: str = "") -> dict:
        username = username.strip().lower()
        if len(password) < MIN_PASSWORD:
            raise ValidationError({"password": f"must be at least {MIN_PASSWORD} characters"})
        self._check_roles(roles)
        if store and not self.db.is_store(store):
            raise ValidationError({"store": store_problem(store, self.db.store_ids())})
        fields = {"username": username, "name": name, "password_hash": hash_password(password),
                  "roles": ",".join(roles), "store": store, "active": True}
        errors = ENTITIES["user"].check_fields(fields, self.db.codes)
        if errors:
            raise ValidationError(errors)
        with transaction(self.db.conn):
            if self.db.replica.get("user", user_key(username)):
                raise ValidationError({"username": f"user {username} already exists"})
            self.db.write("user", user_key(username), fields, by)
        return self._existing(username)

    def get(self, username: str) -> dict[str, Any] | None:
        record = self.db.replica.get("user", user_key(username.strip().lower()))
        hidden = ("password_hash", "api_token_hash", "session_epoch")
        return None if record is None else {k: v for k, v in record.items() if k not in hidden}

    def _existing(self, username: str) -> dict[str, Any]:
        """``get`` for a user known to be there (just written, or read from the table)."""
        user = self.get(username)
        assert user is not None, username
        return user

    def update(self, username: str, by: str, *, password: str | None = None, roles: list[str] | None = None,
               active: bool | None = None, name: str | None = None) -> dict:
        key = user_key(username.strip().lower())
        fields: dict[str, Any] = {}
        if password is not None:
            if len(password) < MIN_PASSWORD:
                raise ValidationError({"password": f"must be at least {MIN_PASSWORD} characters"})
            fields["password_hash"] = hash_password(password)
        if roles is not None:
            self._check_roles(roles)
            fields["roles"] = ",".join(roles)
        if active is not None:
            fields["active"] = active
        if name is not None:
            fields["name"] = name
        if {"password_hash", "roles", "active"} & set(fields):
            # Ends every web session this user has, here at once and at each store once
            # the record has replicated (lanehub.domain.users: sessions carry the epoch of their login).
            fields["session_epoch"] = new_session_epoch()
        with transaction(self.db.conn):
            if not self.db.replica.get("user", key):
                raise ValidationError({"username": f"no user {username}"})
            if fields:
                self.db.write("user", key, fields, by)
        return self._existing(username)

    def new_token(self, username: str, by: str) -> str:
        """A new API token for the user (shown once; only its hash is kept and replicated)."""
        import secrets

        from lanehub.domain.users import token_hash

        token = "lh_" + secrets.token_urlsafe(32)
        key = user_key(username.strip().lower())
        with transaction(self.db.conn):
            if not self.db.replica.get("user", key):
                raise ValidationError({"username": f"no user {username}"})
            self.db.write("user", key, {"api_token_hash": token_hash(token)}, by)
        return token

    # Inside this class the name list is this method from here on, so annotations say builtins.list.
    def list(self) -> list[dict[str, Any]]:
        return [self._existing(r[0]) for r in self.db.conn.execute("SELECT username FROM users ORDER BY username")]

    def add_role(self, name: str, permissions: builtins.list[str], by: str) -> dict:
        fields = {"name": name, "permissions": ",".join(permissions)}
        errors = ENTITIES["role"].check_fields(fields, self.db.codes)
        if errors:
            raise ValidationError(errors)
        with transaction(self.db.conn):
            self.db.write("role", natural_key("role", name), fields, by)
        role = self.db.replica.get("role", natural_key("role", name))
        assert role is not None  # written just above
        return role


def parse_roles(value: str) -> list[str]:
    return split(value.replace(" ", ""))
