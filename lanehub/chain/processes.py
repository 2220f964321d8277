"""lanehub services as real processes, for the demo and for tests about crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lanehub.runtime.config import dump_toml


def lanehub_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lanehub.cli.main", *args]


def run_lanehub(*args: str, input: str | None = None, check: bool = True,
                cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a `lanehub ...` command to completion."""
    result = subprocess.run(lanehub_command(*args), input=input, capture_output=True, text=True, timeout=120, cwd=cwd)
    if check and result.returncode != 0:
        raise RuntimeError(f"lanehub {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


class ServiceProcess:
    """`lanehub hq|edge|devices run` with a generated config file (a dict of flat
    sections, or TOML text for configs with sub-tables)."""

    def __init__(self, kind: str, name: str, config: dict[str, dict[str, Any]] | str, workdir: str | Path):
        self.kind = kind
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = self.workdir / f"{name}.toml"
        self.log_path = self.workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        self.config_path.write_text(self.config if isinstance(self.config, str) else dump_toml(self.config))
        return self.config_path

    def start(self) -> "ServiceProcess":
        self.write_config()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            lanehub_command(self.kind, "run", "-c", str(self.config_path)),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
            # Its own session: a terminal's Ctrl-C reaches only the process that started
            # it (the demo), which stops the chain in order (Chain.stop).
            start_new_session=True,
        )
        return self

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.poll() is None)

    def stop(self, timeout: float = 15) -> None:
        if self.running:
            assert self.process is not None  # running: started
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no last status; the broker publishes the will."""
        if self.running:
            assert self.process is not None  # running: started
            self.process.kill()
            self.process.wait()

    def restart(self) -> "ServiceProcess":
        self.stop()
        return self.start()

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace"):
                return True
            if self.process and self.process.poll() is not None:
                return False
            time.sleep(0.1)
        return False
