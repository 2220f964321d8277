"""hq.toml: the keys of DESIGN section 3 plus where HQ writes the broker's files."""

from __future__ import annotations

from core.config import Config, Key, broker_keys, load

SCHEMA = {
    "hq": {"db": Key(str, "hq.db", path=True)},
    "broker": broker_keys() | {
        # Where HQ writes the HQ broker's password and ACL files when a store is
        # added, and the command that makes the broker re-read them (SIGHUP).
        "passwd_file": Key(str, "", path=True),
        "acl_file": Key(str, "", path=True),
        "reload_command": Key(str, ""),
    },
    "web": {"host": Key(str, "127.0.0.1"), "port": Key(int, 8800, minimum=0), "secure_cookies": Key(bool, False)},
    "codes": {
        "prefix": Key(str, "CUST-"),
        "width": Key(int, 5, minimum=1),
        "block_size": Key(int, 100, minimum=1),
    },
    "log": {"level": Key(str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))},
}


def load_config(path) -> Config:
    return load(path, SCHEMA)
