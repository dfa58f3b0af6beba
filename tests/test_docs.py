"""The documentation stays true: it builds, it names every hook, command and setting,
and its console examples run.

A ``console`` block in a page is a session on the demo settings (the repository's
``settings.toml``): each ``$ tradepipe …`` line runs, in order, in one folder per
page, and must succeed (or end with the code a ``[exit N]`` line after it names).
The lines shown after a command are what it prints, as a subsequence of its
output; ``...`` in a line stands for anything, and a line of only ``...`` for any
number of lines. Blocks that are not meant to run (a server, ``curl``) are
``shell`` blocks.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tradepipe.cli import cli
from tradepipe.host import load_host
from tradepipe.settings import AppSettings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
#: Component kinds and the settings table each one's keys live under.
KINDS = {
    "broker": "brokers",
    "strategy": "strategies",
    "risk_filter": "risk",
    "sink": "sinks",
    "feed": "feeds",
}


def text_of(*names: str) -> str:
    return "\n".join((DOCS / name).read_text(encoding="utf-8") for name in names)


def all_docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in PAGES)


def mentions_key(text: str, key: str) -> bool:
    """``key`` named as a key: in code (`` `key` ``, `` `key = …` ``) or set in a TOML example."""
    forms = (f"`{key}`", f"`{key} =", f"`{key}=")
    return (
        any(form in text for form in forms) or re.search(rf"^\s*{key} = ", text, re.M) is not None
    )


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    # python -m: run as the `mkdocs` script, its folder (with the `tradepipe` script)
    # would come first on sys.path and be taken for the package.
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    reference = (tmp_path / "cli.html").read_text(encoding="utf-8")
    assert 'id="tradepipe-ledger-runs"' in reference  # a plugin's subcommand, rendered


def test_the_readmes_links_lead_somewhere() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) > 10
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_the_readme_keeps_the_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && pytest' in readme
    assert 'pip install -e ".[test]" && pytest' in ci
    assert len(readme.splitlines()) <= 160  # the details live in docs/


def test_every_hook_is_in_the_reference() -> None:
    from tradepipe import hookspecs

    hooks = {name for name in vars(hookspecs) if name.startswith("tradepipe_")}
    listed = set(re.findall(r"^\s+- (tradepipe_\w+)$", text_of("plugins/reference.md"), re.M))
    assert hooks and listed == hooks


def test_every_command_has_its_reference_block() -> None:
    ctx = cli.make_context("tradepipe", ["--help"], resilient_parsing=True)
    commands = set(cli.list_commands(ctx))
    documented = set(re.findall(r":prog_name: tradepipe (\S+)", text_of("cli.md")))
    assert {"ledger", "tax", "serve", "run-pipeline"} <= commands
    assert documented == commands


def test_every_core_setting_is_documented() -> None:
    text = all_docs()

    def undocumented(table: str, model: Any) -> list[str]:
        missing = []
        for key, info in model.model_fields.items():
            inner = info.annotation
            if isinstance(inner, type) and hasattr(inner, "model_fields"):
                if f"[{table}.{key}]" not in text:
                    missing.append(f"[{table}.{key}]")
                missing += undocumented(f"{table}.{key}", inner)
            elif f"[{table}] {key}" not in text and not mentions_key(text, key):
                missing.append(f"[{table}] {key}")
        return missing

    tables = {
        name: info.annotation
        for name, info in AppSettings.model_fields.items()
        if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields")
    }
    assert {"run", "sizing", "logging", "snapshot", "api"} <= set(tables)
    assert [m for table, model in tables.items() for m in undocumented(table, model)] == []


def test_every_component_setting_is_documented_where_the_component_is() -> None:
    pages = {p: p.read_text(encoding="utf-8") for p in PAGES}
    host = load_host(None)
    missing = []
    for kind, table in KINDS.items():
        for name in host.components(kind):
            cls = host.component(kind, name)
            if cls.__module__.split(".")[0] != "tradepipe":
                continue  # a plugin installed beside tradepipe documents itself
            about = [t for t in pages.values() if f"[{table}.{name}]" in t or f"`{name}`" in t]
            assert about, f"no page documents {kind} {name!r}"
            for key in cls.Settings.model_fields:
                if not any(mentions_key(t, key) for t in about):
                    missing.append(f"[{table}.{name}] {key}")
    assert missing == []


# -- console examples ----------------------------------------------------------------


@dataclass
class Step:
    command: str
    line: int
    shown: list[str] = field(default_factory=list)
    exit_code: int = 0


def console_steps(page: Path) -> list[Step]:
    steps: list[Step] = []
    inside = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            steps.append(Step(line[2:], number))
        elif steps and (code := re.fullmatch(r"\[exit (\d+)\]", line.strip())):
            steps[-1].exit_code = int(code.group(1))
        elif steps and line.strip():
            steps[-1].shown.append(line.rstrip())
    return steps


def shown_in(shown: list[str], output: list[str]) -> str | None:
    """Why ``shown`` is not a subsequence of ``output`` (None when it is)."""
    at = 0
    for want in shown:
        if want.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")))
        while at < len(output) and not pattern.fullmatch(output[at].rstrip()):
            at += 1
        if at == len(output):
            return f"no line like {want!r} (in order)"
        at += 1
    return None


RUNNABLE = [p for p in PAGES if console_steps(p)]


def test_the_quickstart_has_runnable_examples() -> None:
    assert DOCS / "quickstart.md" in RUNNABLE


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(DOCS)))
def test_console_examples_run(page: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "settings.toml").write_text((ROOT / "settings.toml").read_text())
    monkeypatch.setenv("COLUMNS", "100")
    for step in console_steps(page):
        args = shlex.split(step.command)
        assert args[0] == "tradepipe", f"{page.name}:{step.line}: only tradepipe commands run"
        result = CliRunner().invoke(cli, args[1:], prog_name="tradepipe")
        where = f"{page.relative_to(DOCS)}:{step.line}: $ {step.command}"
        assert result.exit_code == step.exit_code, f"{where}\n{result.output}"
        problem = shown_in(step.shown, result.output.splitlines())
        assert problem is None, f"{where}: {problem}\n{result.output}"


def test_the_example_matcher_keeps_order_and_ellipses() -> None:
    output = ["Run summary", "│ bars │ 2250 │", "│ fills │ 41 │"]
    assert shown_in(["Run summary", "...", "│ fills │ ... │"], output) is None
    assert shown_in(["│ fills │ ... │", "│ bars │ ... │"], output) is not None
    assert shown_in(["│ orders │ ... │"], output) is not None
