"""A run's report as one HTML file that needs nothing else: no script, no font, no request.

The pictures are drawn with matplotlib into SVG (text as paths, so no font is
fetched) and written into the page; the tables are plain HTML. What is on it:
the metrics; the equity curve against the benchmark (scaled to the same start);
the drawdown from the running peak; a table of monthly returns; how the trades'
returns are spread; one symbol's closes with the fills marked; the settings the
run ran with.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from collections.abc import Sequence
from typing import Any

from tradepipe.plugins.research.grid import params_text
from tradepipe.plugins.research.metrics import Metrics, Point, round_trips

#: How each metric is shown: (label, key, kind) with kind ``pct``, ``ratio``, ``money``, ``int``.
METRIC_ROWS = (
    ("Start", "start", "text"),
    ("End", "end", "text"),
    ("Days", "days", "int"),
    ("Start equity", "start_equity", "money"),
    ("End equity", "end_equity", "money"),
    ("Total return", "total_return", "pct"),
    ("Annual return", "annual_return", "pct"),
    ("Volatility (annual)", "volatility", "pct"),
    ("Sharpe", "sharpe", "ratio"),
    ("Sortino", "sortino", "ratio"),
    ("Max drawdown", "max_drawdown", "pct"),
    ("Max drawdown, days", "max_drawdown_days", "int"),
    ("Calmar", "calmar", "ratio"),
    ("Trades", "trades", "int"),
    ("Win rate", "win_rate", "pct"),
    ("Profit factor", "profit_factor", "ratio"),
    ("Average win", "avg_win", "money"),
    ("Average loss", "avg_loss", "money"),
    ("Exposure", "exposure", "pct"),
    ("Turnover", "turnover", "ratio"),
    ("Commissions", "commissions", "money"),
    ("Fills", "fills", "int"),
    ("Benchmark", "benchmark", "text"),
    ("Benchmark return", "benchmark_return", "pct"),
    ("Excess return", "excess_return", "pct"),
    ("Alpha (annual)", "alpha", "pct"),
    ("Beta", "beta", "ratio"),
)


def shown(value: Any, kind: str) -> str:
    """A metric as a person reads it; ``-`` for one that could not be had."""
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value * 100:.2f} %"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "money":
        return f"{value:,.2f}"
    return str(value)


def monthly_returns(equity: Sequence[Point]) -> dict[int, dict[int, float]]:
    """Year → month → return over the month (from the last close of the month before;
    the first month from the first close)."""
    ends: dict[tuple[int, int], float] = {}
    for day, value in equity:
        ends[(day.year, day.month)] = value
    out: dict[int, dict[int, float]] = {}
    previous = equity[0][1] if equity else 0.0
    for (year, month), value in sorted(ends.items()):
        if previous:
            out.setdefault(year, {})[month] = value / previous - 1
        previous = value
    return out


def drawdowns(equity: Sequence[Point]) -> list[Point]:
    """Each day's fall from the highest close before it (0 or negative)."""
    peak = float("-inf")
    out = []
    for day, value in equity:
        peak = max(peak, value)
        out.append((day, value / peak - 1 if peak > 0 else 0.0))
    return out


def _svg(figure: Any) -> str:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buffer = io.StringIO()
    FigureCanvasSVG(figure).print_svg(buffer)  # type: ignore[no-untyped-call]
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the XML declaration and doctype stay out of the page


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "path"  # text as outlines: no font to fetch
    matplotlib.rcParams["svg.hashsalt"] = "tradepipe"  # the same run draws the same file
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.2), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=11)
    axes.grid(alpha=0.3)
    return figure, axes


def _dates(points: Sequence[Point]) -> list[dt.date]:
    return [day for day, _ in points]


def equity_picture(equity: Sequence[Point], benchmark: Sequence[Point], name: str | None) -> str:
    figure, axes = _figure(
        "Equity" + (f" against {name} (scaled to the same start)" if name else "")
    )
    axes.plot(_dates(equity), [v for _, v in equity], label="equity", color="#1f5fa8")
    if benchmark and equity:
        start = next((v for d, v in benchmark if d >= equity[0][0]), benchmark[0][1])
        scale = equity[0][1] / start if start else 0
        shown_points = [(d, v * scale) for d, v in benchmark if equity[0][0] <= d <= equity[-1][0]]
        axes.plot(_dates(shown_points), [v for _, v in shown_points], label=name, color="#999")
        axes.legend(loc="upper left")
    return _svg(figure)


def drawdown_picture(equity: Sequence[Point]) -> str:
    figure, axes = _figure("Drawdown (underwater)")
    points = drawdowns(equity)
    axes.fill_between(_dates(points), [v * 100 for _, v in points], 0, color="#c0392b", alpha=0.5)
    axes.set_ylabel("% below the peak")
    return _svg(figure)


def trades_picture(returns: Sequence[float]) -> str:
    figure, axes = _figure("Trade returns")
    if returns:
        axes.hist([r * 100 for r in returns], bins=min(40, max(5, len(returns))), color="#1f5fa8")
    axes.set_xlabel("return of the trade, %")
    axes.set_ylabel("trades")
    return _svg(figure)


def price_picture(symbol: str, closes: Sequence[Point], fills: Sequence[Any]) -> str:
    from tradepipe.clock import NEW_YORK

    figure, axes = _figure(f"{symbol}: closes, buys ▲ and sells ▼")
    axes.plot(_dates(closes), [v for _, v in closes], color="#555", linewidth=1)
    for side, marker, color in (("buy", "^", "#1e8449"), ("sell", "v", "#c0392b")):
        mine = [f for f in fills if f.symbol == symbol and str(f.side) == side]
        axes.scatter(
            [f.ts.astimezone(NEW_YORK).date() for f in mine],
            [float(f.price) for f in mine],
            marker=marker,
            color=color,
            s=36,
            zorder=3,
        )
    return _svg(figure)


def _metrics_table(metrics: Metrics) -> str:
    values = metrics.as_dict()
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td data-metric='{key}'>"
        f"{html.escape(shown(values[key], kind))}</td></tr>"
        for label, key, kind in METRIC_ROWS
    )
    return f"<table class='metrics'>{rows}</table>"


def _monthly_table(equity: Sequence[Point]) -> str:
    months = monthly_returns(equity)
    head = "".join(f"<th>{m}</th>" for m in range(1, 13))
    body = ""
    for year, by_month in months.items():
        cells = ""
        for month in range(1, 13):
            value = by_month.get(month)
            if value is None:
                cells += "<td></td>"
            else:
                tone = "up" if value >= 0 else "down"
                cells += f"<td class='{tone}'>{value * 100:.2f}</td>"
        body += f"<tr><th>{year}</th>{cells}</tr>"
    return f"<table class='months'><tr><th>%</th>{head}</tr>{body}</table>"


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; } th, td { padding: 2px 8px; text-align: right; }
table.metrics th { text-align: left; font-weight: normal; color: #555; }
table.months td.up { color: #1e8449; } table.months td.down { color: #c0392b; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; font-size: 12px; }
svg { max-width: 100%; height: auto; }
"""


def report_html(
    *,
    title: str,
    metrics: Metrics,
    equity: Sequence[Point],
    fills: Sequence[Any],
    benchmark: Sequence[Point] = (),
    symbol: str | None = None,
    closes: Sequence[Point] = (),
    settings: dict[str, Any] | None = None,
) -> str:
    """The page: ``title``, the metrics, the pictures, the monthly table, the settings."""
    returns = [trip.ret for trip in round_trips(fills)]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Metrics</h2>",
        _metrics_table(metrics),
        equity_picture(equity, benchmark, metrics.benchmark),
        drawdown_picture(equity),
        "<h2>Monthly returns</h2>",
        _monthly_table(equity),
        trades_picture(returns),
    ]
    if symbol:
        parts.append(price_picture(symbol, closes, fills))
    if settings:
        shown_settings = html.escape(json.dumps(settings, indent=2, sort_keys=True, default=str))
        parts += ["<h2>Settings</h2>", f"<pre>{shown_settings}</pre>"]
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        # Nothing may be fetched: no script, no style or image from anywhere.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def heatmap_picture(x_key: str, y_key: str, metric: str, results: Sequence[Any]) -> str:
    """The metric of each combination of two parameters (the best over any others)."""
    import math

    xs = sorted({r.params[x_key] for r in results}, key=float)
    ys = sorted({r.params[y_key] for r in results}, key=float)
    grid = [[math.nan for _ in xs] for _ in ys]
    for r in results:
        value = r.metrics.get(metric)
        if value is None:
            continue
        i, j = ys.index(r.params[y_key]), xs.index(r.params[x_key])
        grid[i][j] = value if math.isnan(grid[i][j]) else max(grid[i][j], value)
    figure, axes = _figure(f"{metric} by {x_key.rsplit('.', 1)[-1]} and {y_key.rsplit('.', 1)[-1]}")
    axes.grid(False)
    image = axes.imshow(grid, cmap="RdYlGn", aspect="auto", origin="lower")
    axes.set_xticks(range(len(xs)), [str(x) for x in xs])
    axes.set_yticks(range(len(ys)), [str(y) for y in ys])
    axes.set_xlabel(x_key)
    axes.set_ylabel(y_key)
    figure.colorbar(image, ax=axes)
    return _svg(figure)


def sweep_html(doc: dict[str, Any], results: Sequence[Any]) -> str:
    """A sweep's page: the warnings, the best results, a heatmap of two parameters,
    and for a walk-forward the windows and the out-of-sample equity."""
    metric = doc["metric"]
    keys = doc["keys"]
    parts = [
        f"<h1>Sweep {html.escape(doc['sweep_id'])}</h1>",
        f"<p>{doc['combinations']} combination(s), {doc['ran']} replay(s), ranked by "
        f"{html.escape(metric)}; status {html.escape(doc['status'])}.</p>",
    ]
    parts += [f"<p class='warning'>{html.escape(line)}</p>" for line in doc["warnings"]]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(r['params'].get(k)))}</td>" for k in keys)
        + f"<td>{html.escape(r['period'])}</td>"
        + f"<td data-metric='{html.escape(metric)}'>{shown(r['metrics'].get(metric), 'ratio')}</td>"
        + f"<td>{shown(r['metrics'].get('total_return'), 'pct')}</td>"
        + f"<td>{shown(r['metrics'].get('max_drawdown'), 'pct')}</td></tr>"
        for r in doc["top"]
    )
    parts.append(
        f"<h2>Best results</h2><table class='top'><tr>{head}<th>period</th>"
        f"<th>{html.escape(metric)}</th><th>return</th><th>max drawdown</th></tr>{rows}</table>"
    )
    grid_kind = "train" if doc.get("walk_forward") else "grid"
    chosen = [r for r in results if r.kind == grid_kind and not r.error]
    if len(keys) >= 2 and chosen:
        parts.append(heatmap_picture(keys[0], keys[1], metric, chosen))
    if doc["failed"]:
        failed = "".join(
            f"<tr><td>{html.escape(str(f['params']))}</td><td>{html.escape(f['error'])}</td></tr>"
            for f in doc["failed"]
        )
        parts.append(f"<h2>Failed</h2><table>{failed}</table>")
    wf = doc.get("walk_forward")
    if wf:
        windows = "".join(
            f"<tr><td>{w['window']}</td><td>{html.escape(w['train'])}</td>"
            f"<td>{html.escape(params_text(w['chosen']))}</td>"
            f"<td>{shown(w['in_sample'], 'ratio')}</td>"
            f"<td>{html.escape(w['test'])}</td><td>{shown(w['out_of_sample'], 'ratio')}</td></tr>"
            for w in wf["windows"]
        )
        parts.append(
            "<h2>Walk-forward</h2><table><tr><th>window</th><th>train</th><th>chosen</th>"
            f"<th>in sample</th><th>test</th><th>out of sample</th></tr>{windows}</table>"
        )
        curve = [(dt.date.fromisoformat(day), value) for day, value in wf["equity"]]
        if curve:
            figure, axes = _figure("Out of sample: the test windows stitched")
            axes.plot(_dates(curve), [v for _, v in curve], color="#1f5fa8")
            parts.append(_svg(figure))
    body = "\n".join(parts)
    title = f"Sweep {doc['sweep_id']}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}"
        ".warning { background: #fff4d6; padding: .5em; }</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
