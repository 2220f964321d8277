"""Device profiles in devices/firmware-config/: every one is valid, the udev rules are
generated from them (and the committed file is what they generate), and a
bad profile stops with one line naming the file and the key."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devices.profiles import PROFILES_DIR, UDEV_RULES, check_udev_rules, load_profile, load_profiles, udev_rules
from lanehub.chain.processes import run_lanehub
from lanehub.runtime.config import ConfigError

PROFILES = sorted(PROFILES_DIR.glob("*.toml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_profile_is_valid(path):
    profile = load_profile(path)
    assert profile.model and profile.kind in ("scanner", "card_reader", "printer")
    if profile.connection in ("evdev", "usb"):
        assert profile.has_usb_ids


def test_the_profiles_cover_the_common_models():
    kinds = {(p.kind, p.connection) for p in load_profiles().values()}
    assert {("scanner", "evdev"), ("scanner", "serial"), ("card_reader", "evdev"), ("printer", "usb"),
            ("printer", "network")} <= kinds


def test_every_usb_profile_gets_a_rule_and_the_committed_rules_are_current():
    profiles = load_profiles()
    text = udev_rules(profiles)
    for profile in profiles.values():
        if profile.has_usb_ids:
            assert f'SYMLINK+="lanehub/{profile.name}"' in text
            assert f'ATTRS{{idVendor}}=="{profile.vendor_id}", ATTRS{{idProduct}}=="{profile.product_id}"' in text
    assert check_udev_rules(text) == []
    assert (PROFILES_DIR / UDEV_RULES).read_text() == text, "run `lanehub devices udev`"
    assert "up to date" in run_lanehub("devices", "udev", "--check").stdout


@pytest.mark.skipif(not shutil.which("udevadm"), reason="udevadm is not installed")
def test_udevadm_accepts_the_rules(tmp_path):
    verify = subprocess.run(["udevadm", "verify", "--help"], capture_output=True)
    if verify.returncode != 0:
        pytest.skip("this udevadm has no 'verify' (systemd < 254)")
    result = subprocess.run(["udevadm", "verify", str(PROFILES_DIR / UDEV_RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("line,problem", [
    ('SUBSYSTEM=="input", KERNEL="event*"', "KERNEL cannot be used with ="),
    ('SUBSYSTEM=="input", SYMLINK+=lanehub/x', "cannot parse"),
    ('SUBSYSTEM=="tty", MODE=="0660"', "MODE cannot be used with =="),
])
def test_the_rule_checker_finds_broken_rules(line, problem):
    assert any(problem in p for p in check_udev_rules(line))


@pytest.mark.parametrize("body,key", [
    ('[device]\nmodel = "X"\nkind = "scanner"\nconnection = "network"\n', "[device] connection"),
    ('[device]\nmodel = "X"\nkind = "scanner"\nconnection = "evdev"\n', "[usb] vendor_id"),
    ('[device]\nmodel = "X"\nkind = "toaster"\nconnection = "file"\n', "[device] kind"),
    ('[device]\nmodel = "X"\nkind = "printer"\nconnection = "usb"\n[usb]\nvendor_id = "04B8"\nproduct_id = "0e15"\n',
     "[usb] vendor_id"),
    ('[device]\nmodel = "X"\nkind = "printer"\nconnection = "file"\n[printer]\ncodepage = "cp9999"\n', "[printer] codepage"),
    ('[device]\nmodel = "X"\nkind = "printer"\nconnection = "file"\n[printer]\ncolumnz = 42\n', "[printer] columnz"),
])
def test_a_bad_profile_is_one_line_naming_file_and_key(tmp_path, body, key):
    path = tmp_path / "bad-model.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    message = str(err.value)
    assert str(path) in message and key in message and "\n" not in message


def test_extra_profile_folders_add_to_the_shipped_ones_and_a_same_name_overrides(tmp_path):
    shipped = load_profiles()
    first, second = tmp_path / "site", tmp_path / "store"
    first.mkdir()
    second.mkdir()
    (first / "my-scale-printer.toml").write_text(
        '[device]\nmodel = "Shop Scale Printer"\nkind = "printer"\nconnection = "file"\n')
    (first / "file-printer.toml").write_text(
        '[device]\nmodel = "Site file printer"\nkind = "printer"\nconnection = "file"\n[printer]\ncolumns = 32\n')
    (second / "file-printer.toml").write_text(
        '[device]\nmodel = "Store file printer"\nkind = "printer"\nconnection = "file"\n[printer]\ncolumns = 48\n')
    profiles = load_profiles(PROFILES_DIR, [first, second])
    assert set(profiles) == set(shipped) | {"my-scale-printer"}  # every shipped profile is still there
    assert (profiles["file-printer"].model, profiles["file-printer"].columns) == ("Store file printer", 48)  # later wins
    with pytest.raises(ConfigError, match="no such profile folder"):
        load_profiles(PROFILES_DIR, [tmp_path / "missing"])
