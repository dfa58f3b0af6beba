"""Make the documentation's pictures from a real run, so they can be refreshed.

    python docs/pictures.py            # writes docs/img/*.svg and docs/dashboard.png

In a temporary folder with the repository's demo settings (and a paper account
kept in a file, so the dashboard has positions to show), it replays the demo
and draws:

- ``img/run-summary.svg``: what ``tradepipe run-pipeline`` printed;
- ``img/explain.svg``: ``tradepipe explain`` for one order;
- ``img/pipeline.svg``: the pipeline, each step with what it did in that run;
- ``dashboard.png``: the dashboard, served by ``tradepipe serve`` on a free port
  of 127.0.0.1 and photographed in headless Chromium (Debian's ``chromium``;
  skipped with a message when there is none).

Terminal output keeps its colours: the commands run with ``FORCE_COLOR`` and
their output is drawn by rich, which tradepipe already prints with.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from html import escape
from pathlib import Path

from rich.console import Console
from rich.text import Text

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
IMG = DOCS / "img"
WIDTH = 100
#: The demo's first order, sent: its id is fixed by the demo's seed.
EXPLAINED = "d-fcbd8f85c01ca5c86614"


def tradepipe(folder: Path, *args: str, color: bool = False) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "TP_API_TOKEN": ""}
    env.pop("NO_COLOR", None)
    if color:
        env["FORCE_COLOR"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tradepipe", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"tradepipe {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def terminal_svg(output: str, command: str, path: Path) -> None:
    console = Console(record=True, width=WIDTH, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(Text(f"$ {command}", style="bold"))
    console.print(Text.from_ansi(output.rstrip("\n")))
    console.save_svg(str(path), title=command)


def pipeline_svg(summary: dict[str, object], path: Path) -> None:
    """The pipeline's steps left to right, each with what it did in the run."""
    orders = summary.get("orders", {})
    assert isinstance(orders, dict)
    denied = int(orders.get("denied", 0))
    steps = [
        ("feed", f"{summary['bars']} bars"),
        ("decision sources", f"{summary['decisions']} decisions"),
        ("sizing", f"{int(orders.get('total', 0))} order intents"),
        ("risk filters", f"{denied} denied"),
        ("broker", f"{orders.get('filled', 0)} filled"),
    ]
    box_w, box_h, gap, top = 150, 64, 34, 20
    width = len(steps) * box_w + (len(steps) - 1) * gap + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="210" '
        f'font-family="sans-serif" font-size="14">',
        '<defs><marker id="a" markerWidth="10" markerHeight="8" refX="9" refY="4" '
        'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>',
    ]
    for i, (name, did) in enumerate(steps):
        x = 20 + i * (box_w + gap)
        parts.append(
            f'<rect x="{x}" y="{top}" width="{box_w}" height="{box_h}" rx="8" '
            'fill="#eef3fb" stroke="#3f6fb5"/>'
        )
        parts.append(
            f'<text x="{x + box_w / 2}" y="{top + 26}" text-anchor="middle" '
            f'font-weight="bold">{escape(name)}</text>'
        )
        parts.append(
            f'<text x="{x + box_w / 2}" y="{top + 47}" text-anchor="middle" '
            f'fill="#333">{escape(did)}</text>'
        )
        if i:
            parts.append(
                f'<line x1="{x - gap}" y1="{top + box_h / 2}" x2="{x - 2}" '
                f'y2="{top + box_h / 2}" stroke="#555" marker-end="url(#a)"/>'
            )
    sink_y = top + box_h + 56
    parts.append(
        f'<rect x="20" y="{sink_y}" width="{width - 40}" height="50" rx="8" '
        'fill="#f4f4f4" stroke="#777"/>'
    )
    fills = summary.get("fills", {})
    count = fills.get("count", "") if isinstance(fills, dict) else fills
    parts.append(
        f'<text x="{width / 2}" y="{sink_y + 30}" text-anchor="middle">ledger: every '
        f"decision, verdict, status change and fill ({count} fills) — "
        f"{escape(str(summary.get('ledger', '')))}</text>"
    )
    for i in range(len(steps)):
        x = 20 + i * (box_w + gap) + box_w / 2
        parts.append(
            f'<line x1="{x}" y1="{top + box_h}" x2="{x}" y2="{sink_y - 2}" '
            'stroke="#999" stroke-dasharray="4 3" marker-end="url(#a)"/>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dashboard_png(folder: Path, path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium here: docs/dashboard.png left as it is", file=sys.stderr)
        return
    import httpx
    from playwright.sync_api import sync_playwright

    token = secrets.token_urlsafe(24)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "serve", "--port", str(port)],
        cwd=folder,
        env={**os.environ, "TP_API_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("tradepipe serve did not start")
            time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/#token={token}")
            page.wait_for_selector("body[data-loaded]")
            page.screenshot(path=str(path))  # the first screen: session, account, equity
            browser.close()
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def main() -> None:
    IMG.mkdir(exist_ok=True)
    settings = (ROOT / "settings.toml").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as demo, tempfile.TemporaryDirectory() as served:
        # The demo as shipped: each replay starts a fresh account, so the two runs
        # (one printed for people, one as JSON for the diagram) are the same run.
        folder = Path(demo)
        (folder / "settings.toml").write_text(settings, encoding="utf-8")
        printed = tradepipe(folder, "run-pipeline", "--no-progress", color=True)
        terminal_svg(printed, "tradepipe run-pipeline", IMG / "run-summary.svg")
        explained = tradepipe(folder, "explain", EXPLAINED, color=True)
        terminal_svg(explained, f"tradepipe explain {EXPLAINED}", IMG / "explain.svg")
        summary = json.loads(tradepipe(folder, "run-pipeline", "--no-progress", "--json"))
        pipeline_svg(summary, IMG / "pipeline.svg")
        # For the dashboard, a paper account kept in a file holds the positions.
        folder = Path(served)
        kept = settings.replace(
            "[default.brokers.paper]\n", '[default.brokers.paper]\nstate_file = "paper.json"\n'
        )
        (folder / "settings.toml").write_text(kept, encoding="utf-8")
        tradepipe(folder, "run-pipeline", "--no-progress", "--quiet")
        dashboard_png(folder, DOCS / "dashboard.png")
    print(f"wrote {', '.join(sorted(p.name for p in IMG.iterdir()))} and dashboard.png")


if __name__ == "__main__":
    main()
