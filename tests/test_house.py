"""The house rules, held by machine (docs/architecture.md, docs/decisions.md D41).

- ``lanehub`` (the shared package) imports no site (edge, hq, devices, bench).
- No site imports another: edge, hq and devices talk only over MQTT. (bench measures
  the sites, so it may import them.)
- No import cycle between modules, counting imports inside functions.
- Only ``lanehub/chain`` starts long-running processes (a broker, HQ, the edges, the
  device simulator); elsewhere a process is a one-shot command named below.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lanehub", "edge", "hq", "devices", "bench")
SITES = ("edge", "hq", "devices")

# One-shot commands outside lanehub/chain, and why they are not a service process.
ONE_SHOT_COMMANDS = {
    "hq/broker_files.py": "[broker] reload_command: the operator's command that makes the broker re-read its files",
    "bench/cli.py": "`mosquitto -h`, for the broker version printed beside the figures",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = source_files()


def imported_modules(name: str, path: Path) -> set[str]:
    """The project's modules ``name`` imports, anywhere in its body (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    # `if TYPE_CHECKING:` imports are for annotations only: never run, so never a cycle
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                   for statement in node.body for inner in ast.walk(statement)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # "from pkg import module" names a module; "from module import name" does not
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_tree_is_the_one_the_docs_describe():
    assert not (ROOT / "core").exists(), "core/ became lanehub/ (docs/decisions.md D41)"
    for package in ("protocol", "replication", "domain", "runtime", "web", "cli", "chain", "receipts"):
        assert (ROOT / "lanehub" / package / "__init__.py").is_file(), package
    assert (ROOT / "docs" / "architecture.md").is_file()


def test_lanehub_imports_no_site():
    offenders = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() if top(name) == "lanehub"
                       for target in targets if top(target) != "lanehub")
    assert offenders == []


@pytest.mark.parametrize("site", SITES)
def test_a_site_imports_no_other_site(site):
    offenders = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() if top(name) == site
                       for target in targets if top(target) in SITES and top(target) != site)
    assert offenders == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every group of modules that import each other, round and round."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return groups


def test_no_import_cycles():
    # A package imports its own modules to gather them; that is not a cycle of meaning.
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in GRAPH.items()}
    assert strongly_connected(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def starts_processes(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in {
                    ("subprocess", "Popen"), ("subprocess", "run"), ("subprocess", "call"), ("subprocess", "check_call"),
                    ("subprocess", "check_output"), ("os", "fork"), ("os", "system"), ("os", "execv"), ("os", "execvp")}:
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno}: {owner.id}.{node.func.attr}")
    return calls


def test_only_lanehub_chain_starts_processes():
    offenders = []
    for name, path in MODULES.items():
        relative = str(path.relative_to(ROOT))
        if name.startswith("lanehub.chain") or relative in ONE_SHOT_COMMANDS:
            continue
        offenders += starts_processes(path)
    assert offenders == []
    for relative in ONE_SHOT_COMMANDS:  # a stale entry would let a new process in unseen
        calls = starts_processes(ROOT / relative)
        assert calls and all(".run" in call for call in calls), (relative, calls)
