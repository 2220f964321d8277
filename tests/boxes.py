"""Real booted Debian 12 boxes for the provisioning test.

A bare root file system is made once with ``debootstrap --variant=minbase``
(plus systemd, dbus and sshd: what a store's IT person starts from) and cached
as a tarball outside the clone. Each box is a fresh copy of it, booted with
systemd as PID 1 by ``systemd-nspawn -b`` in a network namespace of its own,
on a test bridge with NAT to the outside (the boxes reach Debian's archive, as
a real box does), reachable from this machine over SSH with a key made for the
run. Downloaded .deb files are kept per box name in the cache to spare the
archive on the next run; nothing else is shared between runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("LANEHUB_TEST_CACHE", "/var/cache/lanehub-test"))
MIRROR = os.environ.get("LANEHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
BASE_PACKAGES = ["systemd-sysv", "dbus", "openssh-server"]
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ConnectTimeout=5", "-o", "BatchMode=yes"]


def missing_tools() -> list[str]:
    return [tool for tool in ("debootstrap", "systemd-nspawn", "nft", "ip", "ssh", "ssh-keygen") if not shutil.which(tool)]


def run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def base_tarball() -> Path:
    """The cached bare Debian 12 root file system, made on first use."""
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(BASE_PACKAGES)} {MIRROR}".encode()).hexdigest()[:12]
    tarball = CACHE / f"{SUITE}-minbase-{key}.tar"
    with _locked(CACHE / ".base.lock"):
        if not tarball.exists():
            root = CACHE / f"build-{key}"
            shutil.rmtree(root, ignore_errors=True)
            run("debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(root), MIRROR,
                timeout=900)
            # Every box makes its own host keys and machine id when it is created.
            for key_file in (root / "etc" / "ssh").glob("ssh_host_*"):
                key_file.unlink()
            (root / "etc" / "machine-id").write_text("")
            run("tar", "--numeric-owner", "-C", str(root), "-cf", f"{tarball}.tmp", ".")
            os.replace(f"{tarball}.tmp", tarball)
            shutil.rmtree(root, ignore_errors=True)
    return tarball


class Network:
    """A bridge on this machine with NAT out, and one network namespace per box."""

    def __init__(self):
        used = run("ip", "-4", "addr").stdout
        for _ in range(100):
            self.subnet = random.randint(2, 250)
            if f"10.231.{self.subnet}." not in used:
                break
        self.bridge = f"lhtest{self.subnet}"
        self.gateway = f"10.231.{self.subnet}.1"
        self.table = f"lanehub_test_{self.subnet}"
        self.namespaces: list[str] = []

    def address(self, octet: int) -> str:
        return f"10.231.{self.subnet}.{octet}"

    def start(self) -> "Network":
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        run("nft", "add", "table", "ip", self.table)
        run("nft", "add", "chain", "ip", self.table, "post", "{ type nat hook postrouting priority 100; }")
        run("nft", "add", "rule", "ip", self.table, "post", "ip", "saddr", f"10.231.{self.subnet}.0/24", "oifname", "!=",
            self.bridge, "masquerade")
        return self

    def attach(self, name: str, octet: int) -> str:
        namespace, outside = f"lhtest{self.subnet}-{name}", f"lh{self.subnet}x{octet}"
        run("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", "host0", "netns", namespace)
        run("ip", "link", "set", outside, "master", self.bridge, "up")
        run("ip", "-n", namespace, "addr", "add", f"{self.address(octet)}/24", "dev", "host0")
        run("ip", "-n", namespace, "link", "set", "host0", "up")
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("ip", "-n", namespace, "route", "add", "default", "via", self.gateway)
        return namespace

    def stop(self) -> None:
        for namespace in self.namespaces:
            run("ip", "netns", "delete", namespace, check=False)
        run("ip", "link", "delete", self.bridge, check=False)
        run("nft", "delete", "table", "ip", self.table, check=False)


def mount_tmpfs(path: Path, size: str = "6g") -> Path:
    """The boxes' file systems live in memory: their dpkg, pip and journald
    writes then never compete for the disk with the rest of the suite, whose
    SQLite commits wait on fsync."""
    path.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    return path


def unmount(path: Path) -> None:
    run("umount", "--lazy", str(path), check=False)


class Box:
    """One booted Debian box: a copy of the base, systemd as PID 1, sshd on its own address."""

    def __init__(self, name: str, network: Network, octet: int, workdir: Path, ssh_key: Path):
        self.name, self.network, self.ip, self.key = name, network, network.address(octet), ssh_key
        self.octet = octet
        self.root = workdir / name / "root"
        self.log = workdir / name / "console.log"
        self.proc: subprocess.Popen | None = None

    def create(self, tarball: Path) -> "Box":
        self.root.mkdir(parents=True)
        run("tar", "--numeric-owner", "-C", str(self.root), "-xf", str(tarball))
        (self.root / "etc" / "hostname").write_text(f"{self.name}\n")
        (self.root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n{self.ip} {self.name}\n")
        ssh_dir = self.root / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy(f"{self.key}.pub", ssh_dir / "authorized_keys")
        run("chroot", str(self.root), "ssh-keygen", "-A")
        return self

    def boot(self, timeout: float = 90) -> "Box":
        namespace = self.network.attach(self.name, self.octet)
        debs = CACHE / "debs" / self.name
        (debs / "partial").mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "-D", str(self.root), "-b", "--keep-unit", "--register=no",
                 f"--network-namespace-path=/run/netns/{namespace}", "-M", self.name,
                 f"--bind={debs}:/var/cache/apt/archives"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"box {self.name} did not boot:\n{self.console()}")
            if self.ssh("true", check=False, timeout=10).returncode == 0:
                return self
            time.sleep(1)
        raise RuntimeError(f"box {self.name} gave no SSH within {timeout}s:\n{self.console()}")

    def console(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def ssh(self, command: str, *, check: bool = True, input: str | None = None, timeout: float = 120):
        result = subprocess.run(["ssh", "-i", str(self.key), *SSH_OPTIONS, f"root@{self.ip}", command],
                                capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"on {self.name}: {command} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def copy_in(self, local: Path, remote: str) -> None:
        run("scp", "-i", str(self.key), *SSH_OPTIONS, str(local), f"root@{self.ip}:{remote}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # nspawn turns SIGTERM into a clean shutdown of the box's systemd.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.root.parent, ignore_errors=True)
