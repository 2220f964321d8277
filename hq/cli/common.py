"""What every `lanehub hq ...` command module shares: opening HQ's database from the -c file.

Its own module so the command modules and the group that gathers them
(hq/cli/main.py) import it, never each other.
"""

from __future__ import annotations

from hq.config import load_config
from hq.db import HQDatabase
from lanehub.cli.shared import fail_on_config_errors


def open_db(config_path) -> HQDatabase:
    """HQ's database named by the hq.toml at ``config_path``; a bad file is one line and exit 2."""
    with fail_on_config_errors():
        return HQDatabase.from_config(load_config(config_path))
