"""The HQ broker's password and ACL files, written from HQ's database.

Every registered store and every HQ process's own broker user (hq_broker_users)
goes in; the broker is told to reload them (``[broker] reload_command``).
"""

from __future__ import annotations

import subprocess

from hq.db import HQDatabase
from lanehub.runtime.config import Config


def reload_broker(command: str) -> None:
    if command:
        result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"broker reload command failed ({result.returncode}): {result.stderr.strip()}")


def broker_files_now(db: HQDatabase, config: Config) -> None:
    """Write the HQ broker's password and ACL files from the registered stores."""
    from lanehub.protocol.acl import broker_password_hash, hq_acl_file, password_file, write_atomic

    broker = config["broker"]
    hashes = db.store_hashes()
    hq_users = db.hq_broker_users()  # every HQ process's own user (HQService.start registers it)
    hashes |= hq_users
    if broker["username"]:
        hashes[broker["username"]] = broker_password_hash(broker["password"])
    if broker["passwd_file"]:
        write_atomic(broker["passwd_file"], password_file(hashes), 0o640)
    if broker["acl_file"]:
        write_atomic(broker["acl_file"], hq_acl_file([broker["username"] or "hq", *hq_users], db.store_ids()), 0o640)
    if broker["passwd_file"] or broker["acl_file"]:
        reload_broker(broker["reload_command"])
