"""The layout promise of DESIGN.md: four folders, one import namespace."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FOLDERS = {
    "core": "tradepipe",
    "brokers": "tradepipe.brokers",
    "strategies": "tradepipe.strategies",
    "plugins": "tradepipe.plugins",
}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    packages = set(setuptools["packages"])
    mapping = setuptools["package-dir"]
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            dotted = ".".join((FOLDERS[folder], *rel.parts)) if rel.parts else FOLDERS[folder]
            assert dotted in packages, f"{init.parent} is not in [tool.setuptools] packages"
            assert mapping[dotted] == str(init.parent.relative_to(ROOT)), dotted


def test_core_holds_no_module_named_like_a_sibling_package() -> None:
    for name in ("brokers", "strategies", "plugins"):
        assert not (ROOT / "core" / f"{name}.py").exists()
        assert not (ROOT / "core" / name).exists()


@pytest.mark.slow
def test_code_never_imports_folders_by_their_bare_names() -> None:
    for folder in [*FOLDERS, "tests", "examples"]:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    assert name.split(".")[0] not in FOLDERS, f"{path}: imports {name}"


def test_builtin_plugins_are_declared_as_entry_points() -> None:
    group = _pyproject()["project"]["entry-points"]["tradepipe"]
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    for module in group.values():
        package, name = module.rsplit(".", 1)
        # A module of a sub-package (tradepipe.plugins.feeds.x) is found through
        # the package-dir mapping, like every package the wheel holds.
        assert (ROOT / mapping[package] / f"{name}.py").exists(), module


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then everything else.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_public_facade_is_sorted_and_importable() -> None:
    import tradepipe

    assert tradepipe.__all__ == sorted(tradepipe.__all__, key=_isort_key)
    assert len(set(tradepipe.__all__)) == len(tradepipe.__all__)
    for name in tradepipe.__all__:
        assert hasattr(tradepipe, name), name


def test_the_dashboards_files_are_package_data() -> None:
    # An installed (not editable) package has only the files package-data names.
    import fnmatch

    data = _pyproject()["tool"]["setuptools"]["package-data"]["tradepipe.plugins.dashboard"]
    folder = ROOT / "plugins" / "dashboard"
    files = [p.relative_to(folder).as_posix() for p in (folder / "web").iterdir()]
    assert {"web/index.html", "web/dashboard.js", "web/dashboard.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in data), name
