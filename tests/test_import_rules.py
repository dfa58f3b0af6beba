"""The layout's rules, checked over every import in the source tree.

- The core (``tradepipe`` outside its plugin folders and its command line) never
  imports a plugin, a broker, a strategy, click or a web framework: it defines the
  interfaces they implement. Two exceptions: a name used only in type hints (the
  command hook's ``click.Command``), and ``tradepipe.testing``, the helpers for
  testing a plugin, which run it against the built-in paper broker.
- Nothing imports a command-line module but the command line: library code
  lives in plain modules the CLI and the API both use. A capability's
  ``tradepipe_register_commands`` hook is where its commands join the CLI, so it
  may import them.

Imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject's package-dir).
FOLDERS = {
    "core": "tradepipe",
    "brokers": "tradepipe.brokers",
    "plugins": "tradepipe.plugins",
    "strategies": "tradepipe.strategies",
}
OUTSIDE_CORE = ("tradepipe.brokers", "tradepipe.plugins", "tradepipe.strategies")
FRAMEWORKS = ("click", "fastapi", "starlette", "uvicorn", "rich_click")
#: What ``tradepipe.testing`` may use beyond the core: the paper broker it runs plugins on.
PAPER = ("tradepipe.brokers.paper",)
REGISTER_COMMANDS = "tradepipe_register_commands"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or module.name)
    line: int
    in_command_hook: bool
    typing_only: bool


def module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FOLDERS[folder], *parts])


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, package: str) -> None:
        self.module, self.package = module, package
        self.found: list[Import] = []
        self._hook = 0
        self._typing = 0

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        typing = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        self._typing += typing
        for child in node.body:
            self.visit(child)
        self._typing -= typing
        for child in node.orelse:
            self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        hook = node.name == REGISTER_COMMANDS
        self._hook += hook
        self.generic_visit(node)
        self._hook -= hook

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parent = self.package.rsplit(".", node.level - 1)[0] if node.level > 1 else self.package
            base = f"{parent}.{base}" if base else parent
        for alias in node.names:
            self._add(f"{base}.{alias.name}", node.lineno)

    def _add(self, target: str, line: int) -> None:
        self.found.append(Import(self.module, target, line, self._hook > 0, self._typing > 0))


def imports() -> list[Import]:
    found: list[Import] = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if folder == "core" and path.relative_to(ROOT / folder).parts[0] in FOLDERS:
                continue
            module = module_name(path)
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            visitor = _Visitor(module, package)
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            found.extend(visitor.found)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_cli(name: str) -> bool:
    """A command-line module: ``tradepipe.cli``, and a capability's ``cli`` and
    ``*_cli`` modules (or a name imported from one). A ``commands`` module is an
    entry point loaded at every start: it may import commands only in its hook."""
    if within(name, ("tradepipe.cli", "tradepipe.__main__")):
        return True
    parts = name.split(".")
    return any(p == "cli" or p.endswith("_cli") for p in parts[1:])


def is_core(name: str) -> bool:
    return within(name, ("tradepipe",)) and not within(
        name, (*OUTSIDE_CORE, "tradepipe.cli", "tradepipe.__main__")
    )


@pytest.mark.slow
def test_the_core_imports_no_plugin_broker_strategy_or_framework() -> None:
    wrong = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in imports()
        if is_core(i.module)
        and not i.typing_only
        and not (i.module == "tradepipe.testing" and within(i.target, PAPER))
        and (within(i.target, OUTSIDE_CORE) or within(i.target, FRAMEWORKS))
    ]
    assert wrong == []


@pytest.mark.slow
def test_only_the_command_line_imports_command_line_modules() -> None:
    wrong = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in imports()
        if is_cli(i.target) and not is_cli(i.module) and not i.in_command_hook
    ]
    assert wrong == []


def test_the_rules_see_what_they_forbid() -> None:
    # The checks above pass on an empty list too: they must find real imports.
    found = imports()
    assert any(i.target == "tradepipe.clock.NEW_YORK" for i in found)
    assert any(i.in_command_hook and is_cli(i.target) for i in found)
    assert any(i.typing_only and i.target == "click" for i in found)
    assert is_cli("tradepipe.plugins.ledger.reconcile_cli.reconcile")
    assert is_cli("tradepipe.cli.output.print_json")
    assert not is_cli("tradepipe.plugins.ledger.reconcile.settle_order")
    assert is_core("tradepipe.services.records") and not is_core("tradepipe.cli.broker")
    assert not is_core("tradepipe.plugins.ledger.sink")


@pytest.mark.slow
def test_no_import_cycles() -> None:
    # Between the project's modules, imports made when a module loads or a function
    # runs (not the public facade ``tradepipe``, which gathers everything, nor a
    # type-only import or a command hook's).
    found = [i for i in imports() if not (i.typing_only or i.in_command_hook)]
    modules = {i.module for i in imports()}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for i in found:
        target = i.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target not in (i.module, "tradepipe"):
            graph[i.module].add(target)
    cycles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph has hundreds of modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [sorted(c) for c in _strongly_connected(graph) if len(c) > 1] == [["a", "b", "c"]]
