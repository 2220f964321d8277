"""hq.toml: the keys of docs/configuration.md plus where HQ writes the broker's files."""

from __future__ import annotations

import re

from lanehub.domain.codes import CodeFormat
from lanehub.runtime.config import Config, ConfigError, Key, Schema, Tables, broker_keys, load


def _chunk_fits(value: int) -> None:
    # A chunk that zlib cannot shrink, in base64, must still fit a reply (16 MiB).
    if value > 8 * 1024 * 1024:
        raise ValueError("must be at most 8388608 (8 MiB)")


SCHEMA: Schema = {
    "hq": {
        "db": Key(str, "hq.db", path=True),
        # Seconds between looks for writes made outside the service that did not wake it
        # (they normally do, at once: hq/wake.py).
        "publish_poll": Key(float, 1.0, minimum=0.01),
        # The snapshot file new stores load (hq/snapshot_file.py, D49): rebuilt this
        # often (seconds) while the log moves, and cut into chunks of this many bytes.
        "snapshot_refresh": Key(float, 3600.0, minimum=1),
        "snapshot_chunk": Key(int, 4 * 1024 * 1024, minimum=4096, check=_chunk_fits),
    },
    "broker": broker_keys() | {
        # Where HQ writes the HQ broker's password and ACL files when a store is
        # added, and the command that makes the broker re-read them (SIGHUP).
        "passwd_file": Key(str, "", path=True),
        "acl_file": Key(str, "", path=True),
        "reload_command": Key(str, ""),
        # The name stores reach this broker by, for the credentials `store add`
        # prints (HQ itself may connect by another one, e.g. 127.0.0.1); empty: host.
        "public_host": Key(str, ""),
    },
    "web": {"host": Key(str, "127.0.0.1"), "port": Key(int, 8800, minimum=0), "secure_cookies": Key(bool, False)},
    "codes": {
        "prefix": Key(str, "CUST-"),
        "width": Key(int, 5, minimum=1),
        "block_size": Key(int, 100, minimum=1),
        # Blocks a store may hold that are not used up yet; one more is refused (the
        # store then gives provisional codes), so no credentials can drain the numbers.
        "max_outstanding_blocks": Key(int, 3, minimum=1),
    },
    "log": {"level": Key(str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))},
    # [import.customers], [import.products], [import.rates]: an external system
    # (POS, CRM) that owns some fields; see docs/importing.md.
    "import": Tables({
        "source": Key(str, "pos", pattern=re.compile(r"^[A-Za-z0-9_-]{1,32}$"),
                      help="the source's name must be 1-32 letters, digits, '_' or '-'"),
        "key": Key(str, "", choices=("", "external_id", "tax_id", "email", "sku", "code")),
        "columns": Key(dict, {}),
        "owned": Key(list, []),
        "export": Key(list, []),
        "query": Key(str, ""),
        "deactivate_missing": Key(bool, False),
        "export_to": Key(str, "", path=True),
        "export_interval": Key(float, 60.0, minimum=1),
        "export_table": Key(str, "lanehub_exports", pattern=re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"),
                            help="a table name (letters, digits, '_')"),
    }, name_pattern=re.compile(r"^(customers|products|rates)$"),
        name_help="imports are named customers, products or rates"),
}


def load_config(path) -> Config:
    return load(path, SCHEMA)


def code_format(config: Config) -> CodeFormat:
    """The chain's customer code format ([codes] prefix and width), or a one-line ConfigError."""
    try:
        return CodeFormat(config["codes"]["prefix"], config["codes"]["width"])
    except ValueError as exc:
        key = "prefix" if "prefix" in str(exc) else "width"
        raise ConfigError(f"{config.path}: [codes] {key}: {exc}") from None
