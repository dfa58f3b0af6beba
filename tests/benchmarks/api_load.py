"""API load benchmark: many clients reading from ``tradepipe serve`` while a pipeline writes.

    python tests/benchmarks/api_load.py [--clients 50] [--seconds 20] [--pause 1]
        [--no-pipeline] [--no-hold] [--order-every 0]

In a temporary directory: settings for the paper simulator (a state file) and
an SQLite ledger, seeded by one replay and one working order. Then
``tradepipe serve`` starts as a subprocess on 127.0.0.1 on a free port (stopped
by its pid at the end), ``POST /broker/connect`` keeps its broker connection
(unless ``--no-hold``), and, unless ``--no-pipeline``, replays of the synthetic
feed run one after another in another process, writing the same ledger.

``--clients`` clients then each send GET requests for ``--seconds``, one at a
time, taking the read endpoints in turn (``/health``, ``/orders``,
``/positions``, ``/equity``, ``/status``, ``/halt``, ``/ledger/orders``,
``/ledger/recent``; ``/equity`` and ``/ledger/recent`` with the dashboard's
limits), pausing ``--pause`` seconds on average (jittered between none and
twice that; before the first request too) after each answer. At one request
a second each, 50 clients ask about four times what 50 open dashboards would
(a refresh of eight calls every 15 s). With ``--order-every N`` one client in
addition places a stock order every N seconds (denied by the risk filters: it
opens a short run and writes it, but sends nothing).

Prints one JSON line, then a table: per endpoint the requests, p50 and p99 in
milliseconds, and the errors (an answer other than 200, or none). Target: p99
under 100 ms for every read at 50 clients. Not collected by ``pytest``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

READS = (
    "/health",
    "/orders",
    "/positions",
    "/equity?limit=500",
    "/status",
    "/halt",
    "/ledger/orders",
    "/ledger/recent?limit=25",
)
TOKEN = "bench-token-0123456789abcdef"
SETTINGS = """
[default.run]
broker = "paper"
feed = "synthetic"
strategies = ["sma_cross"]
risk_filters = ["halt", "min_confidence", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.feeds.synthetic]
symbols = ["AAPL", "MSFT", "SPY"]
bars = 750
[default.brokers.paper]
symbols = ["AAPL", "MSFT", "SPY"]
state_file = "paper.json"
[default.sinks.sql]
path = "ledger.db"
[default.risk.halt]
state_file = "halt.json"
[default.logging]
dir = "logs"
console_level = "ERROR"
[replay.brokers.paper]
state_file = ""
"""
#: A buy far below the market: it stays working at the paper broker.
WORKING = {"symbol": "AAPL", "side": "buy", "quantity": 1, "order_type": "limit", "limit_price": 1}
#: A buy the max_position_value filter denies.
DENIED = {**WORKING, "quantity": 20_000, "limit_price": 50_000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tradepipe(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tradepipe.cli import main; main()", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "TP_API_TOKEN": TOKEN, "NO_COLOR": "1"}


def replay(cwd: Path) -> None:
    subprocess.run(
        tradepipe("run-pipeline", "--env", "replay", "--no-progress", "--quiet"),
        cwd=cwd,
        env=environment(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def pipelines(cwd: Path, stop: threading.Event, done: list[int]) -> None:
    """Replays, one after another, until ``stop``."""
    while not stop.is_set():
        replay(cwd)
        done[0] += 1


def serve(cwd: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        tradepipe("serve", "--port", str(port)),
        cwd=cwd,
        env=environment(),
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("tradepipe serve did not answer within 30 s")


async def reader(
    client: httpx.AsyncClient,
    first: int,
    until: float,
    pause: float,
    times: dict[str, list[float]],
    errors: dict[str, int],
) -> None:
    n = first
    await asyncio.sleep(random.uniform(0, 2 * pause))  # clients arrive, not all at once
    while time.monotonic() < until:
        path = READS[n % len(READS)]
        n += 1
        t0 = time.perf_counter()
        try:
            answer = await client.get(path)
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        times[path].append(time.perf_counter() - t0)
        if not ok:
            errors[path] += 1
        await asyncio.sleep(random.uniform(0, 2 * pause))


async def orders(
    client: httpx.AsyncClient, until: float, every: float, times: list[float], errors: list[int]
) -> None:
    while time.monotonic() < until:
        t0 = time.perf_counter()
        try:
            answer = await client.post("/orders/stock", json=DENIED)
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        times.append(time.perf_counter() - t0)
        errors[0] += not ok
        await asyncio.sleep(every)


async def load(port: int, args: argparse.Namespace) -> dict[str, Any]:
    times: dict[str, list[float]] = {p: [] for p in READS}
    errors = dict.fromkeys(READS, 0)
    order_times: list[float] = []
    order_errors = [0]
    limits = httpx.Limits(max_connections=args.clients + 1)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
        limits=limits,
    ) as client:
        until = time.monotonic() + args.seconds
        tasks = [reader(client, i, until, args.pause, times, errors) for i in range(args.clients)]
        if args.order_every > 0:
            tasks.append(orders(client, until, args.order_every, order_times, order_errors))
        await asyncio.gather(*tasks)
    out: dict[str, Any] = {p: figures(times[p], errors[p]) for p in READS}
    if args.order_every > 0:
        out["POST /orders/stock"] = figures(order_times, order_errors[0])
    return out


def figures(samples: list[float], errors: int) -> dict[str, Any]:
    if not samples:
        return {"requests": 0, "p50_ms": None, "p99_ms": None, "errors": errors}
    cuts = statistics.quantiles(samples, n=100) if len(samples) > 1 else samples * 99
    return {
        "requests": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pause", type=float, default=1.0, help="mean seconds between requests")
    parser.add_argument("--no-pipeline", dest="pipeline", action="store_false")
    parser.add_argument("--no-hold", dest="hold", action="store_false")
    parser.add_argument("--order-every", type=float, default=0, help="seconds; 0: no orders")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tradepipe-bench-") as tmp:
        cwd = Path(tmp)
        (cwd / "settings.toml").write_text(SETTINGS)
        replay(cwd)  # the ledger's first run: decisions, orders, fills, snapshots
        port = free_port()
        server = serve(cwd, port)
        stop = threading.Event()
        done = [0]
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            ) as setup:
                setup.post("/orders/stock", json=WORKING).raise_for_status()
                if args.hold:
                    setup.post("/broker/connect").raise_for_status()
            writer = threading.Thread(target=pipelines, args=(cwd, stop, done), daemon=True)
            if args.pipeline:
                writer.start()
            t0 = time.monotonic()
            results = asyncio.run(load(port, args))
            elapsed = time.monotonic() - t0
            stop.set()
            if args.pipeline:
                writer.join()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    total = sum(r["requests"] for r in results.values())
    print(
        json.dumps(
            {
                "benchmark": "api_load",
                "clients": args.clients,
                "seconds": round(elapsed, 1),
                "pause_s": args.pause,
                "held_broker": args.hold,
                "pipeline_replays": done[0] if args.pipeline else None,
                "requests_per_second": round(total / elapsed, 1),
                "errors": sum(r["errors"] for r in results.values()),
                "endpoints": results,
            }
        )
    )
    print(f"\n{'endpoint':<26}{'requests':>9}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for path, r in results.items():
        print(f"{path:<26}{r['requests']:>9}{r['p50_ms']!s:>10}{r['p99_ms']!s:>10}{r['errors']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
