"""Build lanehub's wheel and a wheelhouse of its dependencies, on the control node.

Usage: build-wheelhouse.py SOURCE WHEELHOUSE [EXTRA ...]

Boxes install from WHEELHOUSE (copied as one reproducible WHEELHOUSE.tar) with
no package index and no compiler. The wheel
is built reproducibly (SOURCE_DATE_EPOCH from the source's last commit), so the
same source gives the same file and copying it to a box again is not a change.
Dependencies already in the wheelhouse are reused (pip prefers them), so evdev is
compiled once. Prints one JSON line: {"changed", "wheel", "version"}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def epoch(source: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(source), "log", "-1", "--format=%ct"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if out:
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    return "315532800"  # 1980-01-01: the earliest time a zip file can hold


def pip(*args: str, env: dict | None = None, check: bool = True) -> bool:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                            text=True, env=env)
    if check and result.returncode != 0:
        sys.exit(f"pip {' '.join(args)} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result.returncode == 0


def pack(wheelhouse: Path) -> bool:
    """WHEELHOUSE.tar: the wheels, sorted, with fixed owners and times (same wheels, same bytes)."""
    tar = wheelhouse.with_name(wheelhouse.name + ".tar")
    tmp = tar.with_name(f"{tar.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as out:
        for wheel in sorted(wheelhouse.glob("*.whl")):
            info = out.gettarinfo(str(wheel), arcname=wheel.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "root", "root", 0o644
            with open(wheel, "rb") as fh:
                out.addfile(info, fh)
    if tar.exists() and tar.read_bytes() == tmp.read_bytes():
        tmp.unlink()
        return False
    os.replace(tmp, tar)
    return True


def main() -> None:
    source, wheelhouse, extras = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[3:]
    if not (source / "pyproject.toml").exists():
        sys.exit(f"{source} is not a lanehub checkout (no pyproject.toml): set lanehub_build_source")
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A copy of the tracked source, so the build never writes into the checkout.
        files = subprocess.run(["git", "-C", str(source), "ls-files", "-co", "--exclude-standard"],
                               capture_output=True, text=True).stdout.split()
        tree = Path(tmp) / "src"
        if files:
            for name in files:
                if (source / name).is_file():
                    (tree / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source / name, tree / name)
        else:
            shutil.copytree(source, tree, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info"))
        out = Path(tmp) / "out"
        # The build backend comes from the wheelhouse when it is there already (no index round trip).
        offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
        build = os.environ | {"SOURCE_DATE_EPOCH": epoch(source)}
        if not pip("wheel", "--no-deps", "--wheel-dir", str(out), str(tree), env=build | offline, check=False):
            pip("wheel", "--no-deps", "--wheel-dir", str(out), str(tree), env=build)
        (built,) = out.glob("lanehub-*.whl")
        target = wheelhouse / built.name
        changed = not target.exists() or target.read_bytes() != built.read_bytes()
        if changed:
            for old in wheelhouse.glob("lanehub-*.whl"):
                old.unlink()
            shutil.move(str(built), target)
    version = target.name.split("-")[1]
    spec = f"lanehub[{','.join(extras)}]=={version}" if extras else f"lanehub=={version}"
    # Offline first: a wheelhouse that already holds every dependency needs no index.
    wanted = (spec, "setuptools>=68", "wheel")
    if not pip("wheel", "--no-index", "--wheel-dir", str(wheelhouse), "--find-links", str(wheelhouse), *wanted,
               check=False):
        pip("wheel", "--wheel-dir", str(wheelhouse), "--find-links", str(wheelhouse), *wanted)
    packed = pack(wheelhouse)
    print(json.dumps({"changed": changed or packed, "wheel": target.name, "version": version,
                      "tarball": str(wheelhouse.with_name(wheelhouse.name + ".tar"))}))


if __name__ == "__main__":
    main()
