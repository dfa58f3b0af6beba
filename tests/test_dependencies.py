"""Every library the package imports is one it declares: an install from the
project's own files has all it needs (a library that only came along with a
test dependency once left `tradepipe sweep` broken on a plain install)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("core", "brokers", "plugins", "strategies")
#: Imported by the package without being one of its dependencies, and why.
EXEMPT = {
    # A pytest plugin (fixtures and helpers), loaded from a test suite's conftest:
    # whoever imports it runs pytest.
    "pytest": {"core/testing.py"},
    # The `postgres` extra's driver: the ledger's writer process imports it only for
    # a `postgresql+psycopg://` ledger, whose engine has already loaded it.
    "psycopg": {"plugins/ledger/writer.py"},
}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=\[; ~!]", requirement, maxsplit=1)[0]).lower()


def _imports() -> dict[str, set[str]]:
    """Top-level module -> the package's files that import it (stdlib left out)."""
    found: dict[str, set[str]] = {}
    for folder in PACKAGE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top in sys.stdlib_module_names or top in ("tradepipe", "__future__"):
                        continue
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_library_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    providers = packages_distributions()
    missing = []
    for module, files in sorted(_imports().items()):
        if files <= EXEMPT.get(module, set()):
            continue
        distributions = {_name(d) for d in providers.get(module, [])}
        if not distributions & declared:
            missing.append(f"{module} ({', '.join(sorted(distributions)) or '?'}): {sorted(files)}")
    assert not missing, "imported but not in [project] dependencies:\n" + "\n".join(missing)
