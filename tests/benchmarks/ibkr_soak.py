"""IBKR soak: a live run on ``ibkr_stream`` against the gateway stand-in, at IBKR's real rates.

    python tests/benchmarks/ibkr_soak.py [--minutes 3] [--symbols 3] [--bar-size 5s]

The stand-in (``tests/brokers/standin``) runs in its own process over TLS on 127.0.0.1 and
measures IBKR's pacing limits on arrival (a 429 and the penalty box for any request too
soon); a thread plays a random-walk market for the symbols (trades every 0.2 s) and fills
market orders at the last price. A live run (``tradepipe.live.run.LiveRun``) trades it through
the Client Portal adapter for ``--minutes`` of wall time: the WebSocket stream, 5-second
bars, the SMA crossover on short windows (so it trades often), sizing, the default risk
filters, the SQL ledger (its writer process), the status file. Nothing is accelerated:
IBKR's limits are the wall's.

Prints one JSON line, then the same for people: bars, decisions, orders, fills, every
request the gateway received and how many it answered 429 (target: 0), pacing
violations, the order list's smallest spacing as the gateway measured it, feed-to-decision
p50/p99, order-to-fill wall time (IBKR's order stream wakes the run), and resident memory
after the first minute and at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import trustme
from live_soak import OrderTimes, percentiles, rss_mb
from tradepipe.clock import SystemClock
from tradepipe.host import load_host
from tradepipe.live.run import LiveRun
from tradepipe.pipeline import build_pipeline
from tradepipe.settings import validate_settings

BROKERS = Path(__file__).parents[1] / "brokers"
CONIDS = {"AAPL": 265598, "MSFT": 272093, "SPY": 756733, "IBM": 8314}


def start_standin(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """The stand-in in its own process: (process, base URL, CA file)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, key_path = tmp / "ca.pem", tmp / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(key_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "standin", "--cert", str(key_path), "--key", str(key_path),
         "--host", "127.0.0.1", "--port", "0"],
        cwd=BROKERS,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the stand-in did not start: {line!r}")
    return proc, f"https://127.0.0.1:{line.split()[1]}", str(ca_path)


class Market(threading.Thread):
    """Trades for each symbol every 0.2 s (a random walk); market orders fill at the last."""

    def __init__(self, control: httpx.Client, symbols: list[str]) -> None:
        super().__init__(daemon=True)
        self.control = control
        self.symbols = symbols
        self.prices = dict.fromkeys(symbols, 190.0)
        self.stop = threading.Event()
        self.rng = random.Random(11)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            ticks = []
            for symbol in self.symbols:
                price = self.prices[symbol] * (1 + self.rng.gauss(0, 0.0008))
                self.prices[symbol] = round(price, 2)
                ticks.append({"conid": CONIDS[symbol], "price": self.prices[symbol],
                              "size": 100, "after": 0})  # fmt: skip
            self.control.post("/ticks", json={"ticks": ticks})
            first = self.prices[self.symbols[0]]
            self.control.post("/fill_market_orders", json={"price": first})


def settings_for(args: argparse.Namespace, tmp: Path, base: str, ca: str) -> Any:
    return validate_settings(
        {
            "run": {
                "mode": "live",
                "broker": "client_portal",
                "feed": "ibkr_stream",
                "calendar": "always",
                "maintenance_window": "",
                "strategies": ["sma_cross"],
                "sinks": ["sql"],
                "status_file": str(tmp / "status.json"),
                "status_seconds": 1,
                "session": "soak",
            },
            "feeds": {
                "ibkr_stream": {
                    "symbols": list(CONIDS)[: args.symbols],
                    "bar_size": args.bar_size,
                    "warmup_bars": 0,
                }
            },
            "strategies": {
                "sma_cross": {
                    "fast": 2,
                    "slow": 5,
                    "quantity": 10,
                    "confidence": 90,
                    "counter_trend_confidence": 90,
                }
            },
            "brokers": {
                "client_portal": {
                    "base_url": f"{base}/v1/api",
                    "verify": ca,
                    "account_id": "DU1234567",
                }
            },
            "risk": {"max_position_value": {"limit": 1_000_000}},
            "sizing": {"max_position_value": 1_000_000},
            "sinks": {"sql": {"path": str(tmp / "ledger.db")}},
            "logging": {"level": "WARNING", "file": False},
        },
        source="ibkr soak",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="wall minutes (default 3)")
    parser.add_argument("--symbols", type=int, default=3, choices=range(1, len(CONIDS) + 1))
    parser.add_argument("--bar-size", default="5s", help="bar length (default 5s)")
    args = parser.parse_args(argv)
    logging.getLogger("tradepipe").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="tradepipe-ibkr-soak-") as name:
        tmp = Path(name)
        proc, base, ca = start_standin(tmp)
        control = httpx.Client(base_url=f"{base}/_standin", verify=ca, timeout=10)
        market = Market(control, list(CONIDS)[: args.symbols])
        try:
            market.start()
            settings = settings_for(args, tmp, base, ca)
            orders = OrderTimes()
            pipeline = build_pipeline(
                settings, load_host(settings.plugins, [orders]), clock=SystemClock()
            )
            memory: dict[str, float] = {}
            started = time.monotonic()

            def sample(_status: dict[str, Any]) -> None:
                if "start" not in memory and time.monotonic() - started > 60:
                    memory["start"] = rss_mb()
                memory["end"] = rss_mb()

            runner = LiveRun(pipeline, view=sample)
            timer = threading.Timer(args.minutes * 60, runner.request_stop, ["the soak is over"])
            timer.start()
            result, _summary = runner.run()
            timer.cancel()
            wall = time.monotonic() - started
            journal = control.get("/requests").json()
            pacing = control.get("/pacing").json()
        finally:
            market.stop.set()
            market.join(5)
            control.close()
            proc.terminate()
            proc.wait(10)
    reads = [r["at"] for r in journal if r["path"] == "/iserver/account/orders"]
    spacing = min((b - a for a, b in itertools.pairwise(reads)), default=None)
    stats = runner.stats
    out = {
        "benchmark": "ibkr_soak",
        "minutes": args.minutes,
        "symbols": args.symbols,
        "bar_size": args.bar_size,
        "bars": stats.bars,
        "decisions": result.decisions,
        "orders": result.orders,
        "fills": result.fills,
        "requests": len(journal),
        "requests_per_second": round(len(journal) / wall, 2),
        "answered_429": sum(1 for r in journal if r["status"] == 429),
        "pacing_violations": len(pacing["violations"]),
        "order_list_min_spacing_s": None if spacing is None else round(spacing, 3),
        "feed_to_decision_ms": percentiles(list(stats.decision_latency)),
        "order_to_fill_ms": percentiles(orders.wall),
        "rss_mb": {
            "start": round(memory.get("start", 0.0), 1),
            "end": round(memory.get("end", 0.0), 1),
        },
    }
    print(json.dumps(out))
    print(
        f"{out['bars']} bars, {out['decisions']} decisions, {out['orders']} orders, "
        f"{out['fills']} fills in {wall:.0f} s; {out['requests']} requests to the gateway "
        f"({out['requests_per_second']}/s), {out['answered_429']} answered 429, "
        f"{out['pacing_violations']} pacing violations; order list read at least "
        f"{out['order_list_min_spacing_s']} s apart; feed-to-decision "
        f"{out['feed_to_decision_ms']} ms; order-to-fill {out['order_to_fill_ms']} ms; "
        f"RSS {out['rss_mb']} MB"
    )
    return 0 if out["answered_429"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
