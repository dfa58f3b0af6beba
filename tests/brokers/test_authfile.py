"""The token file: private, atomic, and safe to write from two processes at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tradepipe.brokers.ibkr.authfile import AuthFile


@pytest.mark.slow
def test_two_processes_writing_sections_at_once_lose_none(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "tokens.json"
    script = textwrap.dedent(f"""
        import sys
        from tradepipe.brokers.ibkr.authfile import AuthFile
        store = AuthFile({str(path)!r})
        for n in range(40):
            store.put(f"{{sys.argv[1]}}-{{n}}", {{"n": n}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b")]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    sections = AuthFile(path).read()
    assert len(sections) == 80
    assert path.stat().st_mode & 0o777 == 0o600
