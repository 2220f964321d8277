"""The docs stay true to the tree: docs/cli.md has a row for every `lanehub` command
and subcommand (walking lanehub.cli.main's click groups), the README's commands
run as typed from the repository folder, and the README and docs link nothing
outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from helpers import cli_commands

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


COMMANDS = cli_commands()
NAMES = {" ".join(path) for path, _ in COMMANDS}
# What the first cell of each row of docs/cli.md's tables shows: "lanehub hq store add S001".
ROW_COMMANDS = re.findall(r"^\| `(lanehub[^`]*)` \|", CLI_DOC, re.M)


def test_the_walk_reaches_subcommands_of_subcommands():
    assert {"demo", "hq", "hq users", "hq users add", "hq rates line", "edge customers search", "devices simulate",
            "bench lane"} <= NAMES
    assert all(len(path) <= 3 for path, _ in COMMANDS) and any(len(path) == 3 for path, _ in COMMANDS)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_its_own_row_in_cli_md(path):
    name = "lanehub " + " ".join(path)
    assert any(row == name or row.startswith(name + " ") for row in ROW_COMMANDS), \
        f"docs/cli.md has no table row for `{name}`"


def test_every_row_of_cli_md_is_a_command_that_exists():
    """A row for a command that was renamed or removed is as wrong as a missing one."""
    stale = []
    for row in ROW_COMMANDS:
        words = row.split()[1:]
        # The command is the longest run of leading words that names one; the rest are its arguments.
        if not any(" ".join(words[:n]) in NAMES for n in range(len(words), 0, -1)):
            stale.append(row)
    assert stale == [], f"docs/cli.md documents commands lanehub does not have: {stale}"


def readme_commands() -> list[str]:
    """The command lines of the README's ```sh blocks (comments cut off)."""
    lines = []
    for block in re.findall(r"^```sh\n(.*?)^```$", README, re.M | re.S):
        lines += [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
    return lines


def command_words(words: list[str]) -> list[str]:
    """The leading words of a `lanehub ...` line that name a command (the rest are arguments)."""
    for n in range(len(words), 0, -1):
        if " ".join(words[:n]) in NAMES:
            return words[:n]
    return []


def test_the_readme_s_commands_run_as_typed_from_the_repository_folder():
    lines = readme_commands()
    assert "make demo" in lines and "make test" in lines
    makefile = (ROOT / "Makefile").read_text()
    lanehub_lines = []
    for line in lines:
        program, *words = line.split()
        if program == "make":
            assert re.search(rf"^{re.escape(words[0])}:", makefile, re.M), f"the Makefile has no target {words[0]}: {line}"
            continue
        # What a newcomer types after `make demo`: the virtualenv's script, not a bare `lanehub` the shell lacks.
        assert program == ".venv/bin/lanehub", f"README: `{line}` does not run as typed after make demo"
        assert command_words(words), f"README: `{line}` is not a lanehub command"
        lanehub_lines.append(words)
    assert lanehub_lines
    for words in lanehub_lines:
        # --help: the command is there and starts; its real run needs a chain's config files.
        done = subprocess.run([".venv/bin/lanehub", *command_words(words), "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and "Usage:" in done.stdout, f"{words}: {done.stderr}"


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link and image in a file, code blocks left out."""
    text = re.sub(r"^```.*?^```$", lambda block: "\n" * block.group().count("\n"), path.read_text(), flags=re.M | re.S)
    return [(text.count("\n", 0, m.start()) + 1, m.group(1) or m.group(2)) for m in LINK.finditer(text)]


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_the_docs_link_only_to_files_inside_the_repository(doc):
    outside, missing = [], []
    for line, target in links(doc):
        parsed = urlparse(target)
        if parsed.scheme in ("http", "https", "mailto"):
            continue  # a web page, not a file
        if parsed.scheme or target.startswith("/"):
            outside.append(f"{doc.name}:{line}: {target}")
            continue
        if not parsed.path:
            continue  # #anchor within the page
        resolved = (doc.parent / unquote(parsed.path)).resolve()
        if not resolved.is_relative_to(ROOT):
            outside.append(f"{doc.name}:{line}: {target}")
        elif not resolved.exists():
            missing.append(f"{doc.name}:{line}: {target}")
    assert outside == [], f"links that leave the repository: {outside}"
    assert missing == [], f"links to files that do not exist: {missing}"


def test_the_link_check_sees_a_link_that_leaves_the_repository(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [the design](../shared/DESIGN.md), ![a picture](docs/receipt.png) and [web](https://example.com).\n"
                    "```sh\n[not a link](nowhere.md)\n```\n")
    assert links(page) == [(1, "../shared/DESIGN.md"), (1, "docs/receipt.png"), (1, "https://example.com")]
