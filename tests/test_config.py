"""Config: defaults, environment overrides, and one-line errors naming file and key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge.config import SCHEMA as EDGE_SCHEMA
from hq.config import SCHEMA as HQ_SCHEMA
from lanehub.runtime.config import ConfigError, dump_toml, load


def write(tmp_path, text, name="edge.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_fill_every_key_and_paths_are_relative_to_the_file(tmp_path):
    config = load(write(tmp_path, '[store]\nid = "S001"\n'), EDGE_SCHEMA, environ={})
    assert config["store"]["db"] == str(tmp_path / "edge.db")
    assert config["broker"]["port"] == 1883
    assert config["web"]["port"] == 8801
    hq = load(write(tmp_path, "", "hq.toml"), HQ_SCHEMA, environ={})
    assert hq["codes"] == {"prefix": "CUST-", "width": 5, "block_size": 100, "max_outstanding_blocks": 3}
    assert hq["web"]["port"] == 8800


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[store]\nid = "S001"\n[hq]\nport = 1883\n')
    config = load(path, EDGE_SCHEMA, environ={"LANEHUB_HQ_PORT": "8883", "LANEHUB_STORE_ID": "S777"})
    assert config["hq"]["port"] == 8883
    assert config["store"]["id"] == "S777"


@pytest.mark.parametrize("text, needle", [
    ("", "[store] id: required key is missing"),
    ('[store]\nid = "S/1"\n', "[store] id"),
    ('[store]\nid = "S001"\n[hq]\nport = "x"\n', "[hq] port: expected an integer"),
    ('[store]\nid = "S001"\n[hq]\nport = 0\n', "[hq] port: must be at least 1"),
    ('[store]\nid = "S001"\ncolour = "red"\n', "[store] colour: unknown key"),
    ('[stor]\nid = "S001"\n', "[stor]: unknown section"),
    ('[store]\nid = "S001"\n[log]\nlevel = "LOUD"\n', "[log] level: must be one of"),
    ("[store\n", "not valid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, EDGE_SCHEMA, environ={})
    message = str(info.value)
    assert str(path) in message and needle in message
    assert "\n" not in message


def test_bad_environment_value_names_the_variable(tmp_path):
    path = write(tmp_path, '[store]\nid = "S001"\n')
    with pytest.raises(ConfigError, match=r"\[broker\] port \(from \$LANEHUB_BROKER_PORT\): expected an integer"):
        load(path, EDGE_SCHEMA, environ={"LANEHUB_BROKER_PORT": "many"})


@pytest.mark.parametrize("kind, text, needle", [
    ("edge", '[store]\nid = "S001"\n[hq]\nport = "x"\n', "[hq] port"),
    ("hq", '[codes]\nprefix = "lower-"\n', "[codes] prefix"),
    ("edge", None, "file not found"),
])
def test_run_with_a_bad_config_stops_with_one_line(tmp_path, kind, text, needle):
    path = tmp_path / f"{kind}.toml"
    if text is not None:
        path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "lanehub.cli.main", kind, "run", "-c", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and needle in lines[0]


def test_dump_toml_round_trips(tmp_path):
    config = {"store": {"id": "S001", "outbox_retry": 2.5}, "hq": {"port": 1883, "password": 'p"w'}}
    path = write(tmp_path, dump_toml(config))
    loaded = load(path, EDGE_SCHEMA, environ={})
    assert loaded["store"]["outbox_retry"] == 2.5 and loaded["hq"]["password"] == 'p"w'
