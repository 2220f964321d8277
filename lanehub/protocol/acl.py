"""The brokers' users and ACLs: Mosquitto's password and ACL files, and message limits.

(The Mosquitto process that tests and the demo run is ``lanehub.chain.mosquitto``.)

The password hash is Mosquitto 2's own format (``$7$`` = PBKDF2-SHA512),
written here so HQ can manage store credentials without shelling out to
``mosquitto_passwd`` on a host that may not have it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lanehub.protocol import topics

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 uses

# The largest message payload each broker takes (Mosquitto's message_size_limit: a
# bigger publish is refused, with a PUBACK reason code to an MQTT 5 publisher). Above
# what the services decode (lanehub.protocol.envelope: 256 KiB on a store, 16 MiB on sync topics),
# so that a message too big for lanehub still arrives and is reported with its reason;
# and above the biggest a service publishes (a ticket state or customer reply on a
# store broker; a snapshot page, catch-up page or batch at HQ, which HQ keeps under
# 16 MiB). Also in the Ansible role's template. docs/decisions.md D39.
STORE_BROKER_MESSAGE_LIMIT = 4 * 1024 * 1024
HQ_BROKER_MESSAGE_LIMIT = 32 * 1024 * 1024


def max_packet_size(message_limit: int) -> int:
    """Mosquitto's max_packet_size for a payload limit: room for the topic and
    properties, so a message over the limit is refused (PUBACK) rather than its
    client disconnected; a packet beyond this is not even read into memory."""
    return message_limit + 64 * 1024


def broker_password_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def broker_password_matches(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (``broker_password_hash``'s form) is of ``password``."""
    try:
        _, kind, iterations, salt, _digest = hashed.split("$")
        if kind != "7":
            return False
        return hmac.compare_digest(broker_password_hash(password, base64.b64decode(salt), int(iterations)), hashed)
    except (ValueError, TypeError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(18)


def password_file(hashes: dict[str, str]) -> str:
    """``username:hash`` lines; ``hashes`` maps user to an already-hashed password."""
    for user in hashes:
        if ":" in user or "\n" in user:
            raise ValueError(f"invalid broker user name {user!r}")
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


# Options of the HQ broker's listener (after its `listener` line; also in the
# Ansible role's template). A client's id is its user name, so one user's
# credentials can never take over another's session (HQ's, another store's) by
# sending its client id: HQ's session is its user's ("hq"), a store's its store id.
HQ_LISTENER_SETTINGS = ("use_username_as_clientid true",)


def hq_acl_file(hq_users: str | list[str], stores: list[str], extra: str = "") -> str:
    """ACL of the HQ broker (docs/protocol.md): a store writes only its own
    up/req/status topics and reads only down and its own store/ topics. Every
    HQ process (``hq_users``: each has a user of its own) has HQ's rights."""
    lines = ["# Written by lanehub HQ; edits are overwritten when a store is added."]
    for hq_user in sorted({hq_users} if isinstance(hq_users, str) else set(hq_users)):
        lines += [
            f"user {hq_user}",
            f"topic readwrite {topics.SYNC}/#",
            f"topic readwrite {topics.error('hq')}",
            "",
        ]
    for store in sorted(stores):
        lines += [
            f"user {store}",
            f"topic write {topics.sync_up(store)}",
            f"topic write {topics.sync_req(store)}",
            f"topic write {topics.sync_status(store)}",
            f"topic read {topics.sync_down()}",
            f"topic read {topics.sync_store(store)}",
            f"topic read {topics.sync_store(store)}/#",
            "",
        ]
    return "\n".join(lines) + extra


def write_atomic(path: str | Path, text: str, mode: int = 0o640) -> None:
    """Write ``path`` whole or not at all. A file that exists keeps its owner and
    group, so root running HQ's CLI by hand cannot take the broker's password
    file away from the broker (it reads it as its own group)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    try:
        before = path.stat()
        if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
            os.chown(tmp, before.st_uid, before.st_gid)
    except FileNotFoundError:
        pass
    except PermissionError:  # not root: the file is ours and keeps the directory's group
        pass
    os.replace(tmp, path)
