"""Settings are read from where the user points, never from a file dynaconf finds elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_settings_file_above_the_running_script_is_not_read(tmp_path: Path) -> None:
    # A decoy settings.toml beside a directory holding the "program", as a
    # repository checkout holds its own settings.toml above its virtualenv.
    program_dir = tmp_path / "project" / "bin"
    program_dir.mkdir(parents=True)
    (tmp_path / "project" / "settings.toml").write_text("[default.sizing]\nquantity = 111\n")
    script = program_dir / "show.py"
    script.write_text(
        textwrap.dedent("""
        from tradepipe.settings import load_settings
        print(load_settings().sizing.quantity)
    """)
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "settings.toml").write_text("[default.sizing]\nquantity = 7\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "7"
