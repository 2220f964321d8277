"""`lanehub ...` run inside the test process, answered as a process would be.

Chains built by fixtures run their setup commands (users, products, rates,
customers: a dozen per chain) with this instead of a process each: a process
start costs about a second of CPU (Python and the imports), and on a 2-core
machine the suite waits for CPU. The commands run the same code on the same
files. What is about the command as a process keeps real processes: the
README's and the demo's lines as typed, the wheel, and restores (which refuse
while any process holds the database open, and this one would: modules set
CHAIN_CLI_IN_PROCESS = False).
"""

from __future__ import annotations

import subprocess
import traceback

from click.testing import CliRunner

from lanehub.cli.main import main


def run_in_process(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # as the process would print it
    completed = subprocess.CompletedProcess(["lanehub", *args], result.exit_code, result.stdout, stderr)
    if check and completed.returncode != 0:
        raise RuntimeError(f"lanehub {' '.join(args)} failed ({completed.returncode}): {stderr.strip()}")
    return completed
