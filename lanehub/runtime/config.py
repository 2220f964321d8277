"""TOML configuration with defaults, environment overrides and one-line errors.

Every key not marked required has a default; ``LANEHUB_<SECTION>_<KEY>``
overrides a file value; a missing file, a bad value or an unknown key stops
the process with one line naming the file and the key (docs/configuration.md).
Relative paths are taken relative to the config file's directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lanehub.protocol.topics import ID_RE
from lanehub.runtime.mqtt import BrokerSettings

URL_RE = re.compile(r"^[a-z][a-z0-9+]*://")


class ConfigError(Exception):
    """One line: file, key and what is wrong."""


@dataclass(frozen=True)
class Key:
    type: type
    default: Any = None
    required: bool = False
    path: bool = False  # resolved relative to the config file
    choices: tuple = ()
    minimum: float | None = None
    pattern: Any = None
    help: str = ""
    # A value's own rules beyond its type: called with the converted value, raises
    # ValueError whose message (one line) goes after the file and key.
    check: Any = None


def broker_keys(port: int = 1883) -> dict[str, Key]:
    return {
        "host": Key(str, "127.0.0.1"),
        "port": Key(int, port, minimum=1),
        "username": Key(str, ""),
        "password": Key(str, ""),
        "tls_ca": Key(str, "", path=True),
        "tls_cert": Key(str, "", path=True),
        "tls_key": Key(str, "", path=True),
        "keepalive": Key(int, 30, minimum=5),
    }


@dataclass(frozen=True)
class Tables:
    """A section of named sub-tables with one schema, e.g. ``[device.P1]``,
    ``[device.SC1]``: any number of names, each checked against ``keys``."""

    keys: dict[str, Key]
    name_pattern: Any = None
    name_help: str = ""


Schema = dict[str, "dict[str, Key] | Tables"]


class Config(dict):
    """``{section: {key: value}}`` plus where it came from."""

    path: Path

    def broker(self, section: str) -> BrokerSettings:
        values = self[section]
        return BrokerSettings(**{k: values[k] for k in BrokerSettings.__dataclass_fields__})


def _convert(key: Key, value: Any, where: str) -> Any:
    if key.type is list:  # a list of strings
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        bad = [v for v in value if key.choices and v not in key.choices]
        if bad:
            raise ConfigError(f"{where}: {bad[0]!r} is not one of {', '.join(key.choices)}")
        return list(value)
    if key.type is dict:  # a table of string -> string
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"{where}: expected a table of strings, got {value!r}")
        bad = [v for v in value.values() if key.choices and v not in key.choices]
        if bad:
            raise ConfigError(f"{where}: {bad[0]!r} is not one of {', '.join(key.choices)}")
        return dict(value)
    if key.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if key.type is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if key.minimum is not None and value < key.minimum:
            raise ConfigError(f"{where}: must be at least {key.minimum}, got {value}")
        return value
    if key.type is float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if key.minimum is not None and value < key.minimum:
            raise ConfigError(f"{where}: must be at least {key.minimum}, got {value}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if key.choices and value not in key.choices:
        raise ConfigError(f"{where}: must be one of {', '.join(key.choices)}, got {value!r}")
    if key.pattern is not None and not key.pattern.match(value):
        raise ConfigError(f"{where}: {key.help or 'invalid value'}, got {value!r}")
    return value


def load(path: str | Path, schema: Schema, environ: Mapping[str, str] | None = None, *,
         partial: bool = False) -> Config:
    """The config file checked against ``schema``. ``partial``: read only the
    schema's sections and keys from a file that has more (another service's file,
    e.g. the simulator reading the store and broker from an edge.toml)."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not partial:
        _refuse_other_kind(path, raw, schema)
    for section, values in raw.items():
        section_keys = schema.get(section)
        if partial:
            if section_keys is None or isinstance(section_keys, Tables) or not isinstance(values, dict):
                continue
            values = {name: value for name, value in values.items() if name in section_keys}
            raw[section] = values
        if section_keys is None:
            raise ConfigError(f"{path}: [{section}]: unknown section (expected {', '.join(schema)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section}: must be a [section]")
        if isinstance(section_keys, Tables):
            continue
        for name in values:
            if name not in section_keys:
                raise ConfigError(f"{path}: [{section}] {name}: unknown key")
    config = Config()
    config.path = path
    base = path.resolve().parent
    for section, keys in schema.items():
        if isinstance(keys, Tables):
            config[section] = _load_tables(path, base, section, keys, raw.get(section, {}))
            continue
        out = {}
        for name, key in keys.items():
            env_name = f"LANEHUB_{section.upper()}_{name.upper()}"
            if env_name in environ:
                out[name] = _value(key, {name: environ[env_name]}, name,
                                   f"{path}: [{section}] {name} (from ${env_name})", base)
            else:
                out[name] = _value(key, raw.get(section, {}), name, f"{path}: [{section}] {name}", base)
        config[section] = out
    return config


# The kinds of lanehub config file, each told by a section or key only it has: a
# file of another kind than the command reads is named as such, rather than
# failing on its first key this schema does not know.
KINDS = (
    ("hq", "an HQ config (hq.toml)", lambda raw: "codes" in raw or "import" in raw
     or "db" in (raw.get("hq") if isinstance(raw.get("hq"), dict) else {})),
    ("edge", "a store's edge config (edge.toml)", lambda raw: "mail" in raw or "lane" in raw
     or "db" in (raw.get("store") if isinstance(raw.get("store"), dict) else {})),
    ("devices", "a devices config (devices.toml)", lambda raw: "device" in raw or "devices" in raw),
)


def kind_of(raw: dict) -> str:
    """The kind of config file ``raw`` looks like ("hq", "edge", "devices"), or "" when unsure."""
    found = [kind for kind, _, test in KINDS if test(raw)]
    return found[0] if len(found) == 1 else ""


def _refuse_other_kind(path: Path, raw: dict, schema: Schema) -> None:
    """One line naming the file's kind when it does not fit ``schema`` because it is another kind's."""
    def unknown_keys(section: str, values: Any) -> bool:
        keys = schema.get(section)
        return keys is None or (isinstance(values, dict) and isinstance(keys, dict) and bool(set(values) - set(keys)))

    unknown = [section for section, values in raw.items() if unknown_keys(section, values)]
    mine = kind_of({section: {} if isinstance(keys, Tables) else dict(keys) for section, keys in schema.items()})
    theirs = kind_of(raw)
    if unknown and mine and theirs and mine != theirs:
        labels = {kind: label for kind, label, _ in KINDS}
        raise ConfigError(f"{path}: this is {labels[theirs]}, not {labels[mine]}: give this command the right file with -c")


def _value(key: Key, values: dict, name: str, where: str, base: Path) -> Any:
    """One key's value: given, or its default; converted; a relative path resolved."""
    if name in values:
        value = values[name]
    elif key.required:
        raise ConfigError(f"{where}: required key is missing")
    else:
        value = key.default
    value = _convert(key, value, where)
    if key.check is not None:
        try:
            key.check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if key.path and isinstance(value, list):  # a list of paths
        return [str(base / v) if _relative_path(v) else v for v in value]
    if key.path and _relative_path(value):
        value = str(base / value)
    return value


def _relative_path(value: str) -> bool:
    """A path to resolve against the config's directory (not absolute, not a URL)."""
    return bool(value) and not value.startswith("/") and not URL_RE.match(value) and not value.startswith("postgresql:")


def _load_tables(path: Path, base: Path, section: str, tables: Tables, raw: dict) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for table, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] {table}: must be a [{section}.NAME] table")
        if tables.name_pattern is not None and not tables.name_pattern.match(table):
            raise ConfigError(f"{path}: [{section}.{table}]: {tables.name_help or 'invalid name'}")
        for name in values:
            if name not in tables.keys:
                raise ConfigError(f"{path}: [{section}.{table}] {name}: unknown key")
        out[table] = {name: _value(key, values, name, f"{path}: [{section}.{table}] {name}", base)
                      for name, key in tables.keys.items()}
    return out


STORE_ID = Key(str, required=True, pattern=ID_RE, help="store id must be letters, digits, '_', '.', '-' (max 32)")


def dump_toml(config: dict[str, dict[str, Any]]) -> str:
    """Write a config as TOML: sections of strings, numbers, booleans, lists and
    tables of strings; a section of tables (``{"import": {"customers": {...}}}``)
    becomes ``[import.customers]``."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(item) for item in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{value(k)} = {value(item)}" for k, item in v.items()) + " }"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = []
    for section, values in config.items():
        if values and all(isinstance(v, dict) for v in values.values()):
            for name, table in values.items():
                out.append(f"[{section}.{name}]")
                out += [f"{key} = {value(v)}" for key, v in table.items()]
                out.append("")
            continue
        out.append(f"[{section}]")
        out += [f"{key} = {value(v)}" for key, v in values.items()]
        out.append("")
    return "\n".join(out)
