"""A sweep's results as plain data: what ``tradepipe sweep --json`` prints and its report reads.

Besides the best results, it says how far to trust them: how many
combinations were tried for the best one, the deflated Sharpe ratio of the
best (the chance its Sharpe ratio is more than the luck of that many tries),
and for a walk-forward the out-of-sample result beside the in-sample one.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from tradepipe.plugins.research.grid import Period, Window
from tradepipe.plugins.research.metrics import run_metrics
from tradepipe.plugins.research.store import Stored
from tradepipe.plugins.research.sweep import (
    SweepOutcome,
    deflated_sharpe,
    returns_of,
    score,
    stitched,
)


def _period(r: Stored) -> str:
    return f"{r.start or '…'}:{r.end or '…'}" if r.start or r.end else "all"


def _row(r: Stored) -> dict[str, Any]:
    return {"params": r.params, "period": _period(r), "metrics": r.metrics}


def sweep_document(outcome: SweepOutcome, top: int = 10) -> dict[str, Any]:
    """The sweep's best results, failures, warnings and walk-forward."""
    kind = "train" if outcome.windows else "grid"
    ranked = outcome.ranked(kind)
    keys = sorted({k for r in outcome.results for k in r.params})
    document: dict[str, Any] = {
        "sweep_id": outcome.sweep_id,
        "status": outcome.status,
        "metric": outcome.metric,
        "combinations": outcome.combinations,
        "ran": len([r for r in outcome.results if not r.error]),
        "keys": keys,
        "top": [_row(r) for r in ranked[:top]],
        "failed": [{**_row(r), "error": r.error} for r in outcome.failed()],
        "warnings": [],
        "deflated_sharpe": None,
    }
    if ranked and not outcome.windows:
        best = ranked[0]
        sharpes = [r.metrics.get("sharpe") for r in ranked]
        dsr = deflated_sharpe(returns_of(best.equity), [s for s in sharpes if s is not None])
        document["deflated_sharpe"] = dsr
        document["warnings"] = _warnings(outcome, best, dsr)
    if outcome.windows:
        document["walk_forward"] = _walk_forward(outcome)
        document["warnings"] = _wf_warnings(document["walk_forward"], outcome.metric)
    return document


def _warnings(outcome: SweepOutcome, best: Stored, dsr: float | None) -> list[str]:
    value = best.metrics.get(outcome.metric)
    shown = "-" if value is None else f"{value:.3f}"
    lines = [
        f"The best {outcome.metric} ({shown}) is the best of {outcome.combinations} "
        "combination(s) tried on the same data: expect less from it on data it has not seen."
    ]
    if dsr is not None:
        lines.append(
            f"Deflated Sharpe ratio of the best: {dsr:.2f}, the chance that its Sharpe ratio "
            f"is more than the luck of {outcome.combinations} tries"
            + (" (below 0.95: not convincing)" if dsr < 0.95 else "")
        )
    return lines


def _walk_forward(outcome: SweepOutcome) -> dict[str, Any]:
    tests = {r.window: r for r in outcome.results if r.kind == "test" and not r.error}
    windows = []
    for window in outcome.windows:
        trained = [
            r
            for r in outcome.results
            if r.kind == "train" and r.window == window.number and not r.error
        ]
        best = max(trained, key=lambda r: score(r.metrics, outcome.metric)) if trained else None
        test = tests.get(window.number)
        windows.append(
            {
                "window": window.number,
                "train": window.train.label(),
                "test": window.test.label(),
                "chosen": best.params if best else None,
                "in_sample": best.metrics.get(outcome.metric) if best else None,
                "out_of_sample": test.metrics.get(outcome.metric) if test else None,
                "out_of_sample_return": test.metrics.get("total_return") if test else None,
            }
        )
    start = next((r.metrics.get("start_equity") for r in tests.values()), None) or 1.0
    curve = stitched(list(tests.values()), float(start))
    points = [(dt.date.fromisoformat(day), value) for day, value in curve]
    metrics = run_metrics(points, []).as_dict() if len(points) >= 2 else {}
    return {"windows": windows, "stitched": metrics, "equity": curve}


def _wf_warnings(wf: dict[str, Any], metric: str) -> list[str]:
    inside = [w["in_sample"] for w in wf["windows"] if w["in_sample"] is not None]
    outside = [w["out_of_sample"] for w in wf["windows"] if w["out_of_sample"] is not None]
    if not inside or not outside:
        return []
    mean_in = sum(inside) / len(inside)
    mean_out = sum(outside) / len(outside)
    spread = max(outside) - min(outside)
    return [
        f"In sample the chosen parameters averaged {metric} {mean_in:.3f}; out of sample, on "
        f"the windows that did not choose them, {mean_out:.3f} (from {min(outside):.3f} to "
        f"{max(outside):.3f}, a spread of {spread:.3f}). Trust the out-of-sample figure."
    ]


def read_sweep(ledger: Any, sweep_id: str, top: int = 10) -> tuple[dict[str, Any], list[Stored]]:
    """A sweep in ``ledger`` (a :class:`~tradepipe.plugins.ledger.queries.Ledger`) as
    ``tradepipe sweep --json`` gave it, and its results.

    :raises ConfigError: no such sweep.
    """
    from tradepipe.plugins.research.store import SweepStore

    store = SweepStore(ledger.engine, sweep_id, ledger.where)
    row = store.sweep()
    results = store.results()
    windows = _windows(json.loads(row.spec), results)
    tried = {json.dumps(r.params, sort_keys=True) for r in results if r.kind != "test"}
    outcome = SweepOutcome(sweep_id, row.metric, results, len(tried), windows, row.status)
    return sweep_document(outcome, top), results


def _windows(spec: dict[str, Any], results: list[Stored]) -> list[Window]:
    """A walk-forward sweep's windows, as its results recorded them."""
    if not spec.get("walk_forward"):
        return []
    found: dict[int, dict[str, tuple[str, str]]] = {}
    for r in results:
        if r.kind in ("train", "test"):
            found.setdefault(r.window, {})[r.kind] = (r.start, r.end)
    windows = []
    for number, periods in sorted(found.items()):
        train = periods.get("train", ("", ""))
        test = periods.get("test", (train[1], ""))
        windows.append(Window(number, _dates(*train), _dates(*test)))
    return windows


def _dates(start: str, end: str) -> Period:
    return Period(
        dt.date.fromisoformat(start) if start else None, dt.date.fromisoformat(end) if end else None
    )
