"""Every CLI command is documented; the operator commands work on a real HQ database."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import cli_commands

from lanehub.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


COMMANDS = cli_commands()


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_and_is_documented(path, command):
    assert (command.help or "").strip(), f"lanehub {' '.join(path)} has no help text"
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    assert f"lanehub {' '.join(path)}" in docs, f"lanehub {' '.join(path)} is not in README.md or docs/cli.md"


def test_normative_commands_exist():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"demo", "hq run", "edge run", "hq store add", "bench sync"} <= names


@pytest.fixture
def hq_config(tmp_path):
    broker = tmp_path / "broker"
    path = tmp_path / "hq.toml"
    path.write_text(f'[hq]\ndb = "hq.db"\n[broker]\nusername = "hq"\npassword = "secret"\n'
                    f'passwd_file = "{broker}/passwd"\nacl_file = "{broker}/acl"\n')
    return path


def hq(runner: CliRunner, config: Path, *args: str, ok: bool = True):
    result = runner.invoke(main, ["hq", *args, "-c", str(config)], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_store_add_prints_credentials_once_and_writes_the_broker_files(hq_config, tmp_path):
    runner = CliRunner()
    out = hq(runner, hq_config, "store", "add", "S001").output
    password = re.search(r'password = "([^"]+)"', out).group(1)
    assert 'username = "S001"' in out and len(password) >= 16
    passwd = (tmp_path / "broker" / "passwd").read_text()
    assert re.search(r"^S001:\$7\$101\$", passwd, re.M) and re.search(r"^hq:\$7\$", passwd, re.M)
    assert password not in passwd  # stored hashed
    acl = (tmp_path / "broker" / "acl").read_text()
    assert "user S001\ntopic write lanehub/sync/up/S001\n" in acl
    again = hq(runner, hq_config, "store", "add", "S001", ok=False)
    assert again.exit_code != 0 and "already registered" in again.output
    bad = hq(runner, hq_config, "store", "add", "S/1", ok=False)
    assert bad.exit_code != 0 and "invalid store id" in bad.output


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_store_add_run_as_root_keeps_the_broker_files_owner(hq_config, tmp_path):
    # On a box the files belong to lanehub:mosquitto; root running the CLI by hand must not take them.
    hq(CliRunner(), hq_config, "store", "add", "S001")
    for name in ("passwd", "acl"):
        os.chown(tmp_path / "broker" / name, 65534, 65534)
    hq(CliRunner(), hq_config, "store", "add", "S002")
    for name in ("passwd", "acl"):
        info = (tmp_path / "broker" / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (65534, 65534, 0o640), name
    assert "S002:" in (tmp_path / "broker" / "passwd").read_text()


def test_store_add_prints_the_host_stores_reach_not_the_one_hq_connects_to(hq_config):
    hq_config.write_text(hq_config.read_text().replace('username = "hq"', 'host = "127.0.0.1"\nport = 8883\n'
                                                       'public_host = "hq.example.com"\nusername = "hq"'))
    out = hq(CliRunner(), hq_config, "store", "add", "S001").output
    assert 'host = "hq.example.com"\nport = 8883\n' in out and "127.0.0.1" not in out


def test_the_config_default_is_looked_up_in_lanehub_config_dir(hq_config, monkeypatch, tmp_path):
    # The boxes' lanehub command sets LANEHUB_CONFIG_DIR=/etc/lanehub: `lanehub hq store list` needs no -c.
    monkeypatch.setenv("LANEHUB_CONFIG_DIR", str(hq_config.parent))
    monkeypatch.chdir(tmp_path / "broker" if (tmp_path / "broker").exists() else tmp_path)
    result = CliRunner().invoke(main, ["hq", "store", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("LANEHUB_CONFIG_DIR", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(main, ["hq", "store", "list"], catch_exceptions=False)
    assert result.exit_code == 2 and f"{tmp_path / 'nowhere' / 'hq.toml'}: file not found" in result.output


def test_customer_commands_add_edit_deactivate_reactivate_show_list(hq_config):
    runner = CliRunner()
    added = json.loads(hq(runner, hq_config, "customers", "add", "--first-name", "Ada", "--last-name", "Lovelace",
                          "--email", "ada@example.com").output)
    assert added["code"] == "CUST-00001" and added["active"] is True and added["origin_store"] == ""
    code = added["code"]
    edited = json.loads(hq(runner, hq_config, "customers", "edit", code, "--city", "London", "--payment-status", "pending").output)
    assert edited["city"] == "London" and edited["payment_status"] == "pending"
    assert json.loads(hq(runner, hq_config, "customers", "deactivate", code).output)["active"] is False
    listed = hq(runner, hq_config, "customers", "list").output
    assert code not in listed
    assert code in hq(runner, hq_config, "customers", "list", "--deactivated").output
    assert json.loads(hq(runner, hq_config, "customers", "reactivate", code).output)["active"] is True
    shown = json.loads(hq(runner, hq_config, "customers", "show", added["id"]).output)
    assert shown["city"] == "London"
    second = json.loads(hq(runner, hq_config, "customers", "add", "--first-name", "Alan", "--last-name", "Turing").output)
    assert second["code"] == "CUST-00002"


@pytest.mark.parametrize("args, message", [
    (["--first-name", "Ada"], "last_name is required"),
    (["--first-name", "Ada", "--last-name", "L", "--email", "nope"], "email is not a valid e-mail address"),
    (["--first-name", "Ada", "--last-name", "L", "--phone", "12"], "phone is not a valid phone number"),
    (["--first-name", "Ada", "--last-name", "L", "--payment-status", "rich"], "payment_status must be one of"),
])
def test_invalid_customer_is_refused_with_the_field_named(hq_config, args, message):
    result = hq(CliRunner(), hq_config, "customers", "add", *args, ok=False)
    assert result.exit_code == 1
    assert message in result.output


def test_unknown_customer_is_a_clear_error(hq_config):
    result = hq(CliRunner(), hq_config, "customers", "edit", "CUST-99999", "--city", "X", ok=False)
    assert result.exit_code != 0 and "no customer CUST-99999" in result.output
