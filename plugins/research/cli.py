"""``tradepipe report``: a run's performance, as a table, JSON or one HTML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import console, print_json, table
from tradepipe.errors import ConfigError
from tradepipe.plugins.ledger.cli import command_ledger
from tradepipe.plugins.research.report import METRIC_ROWS, report_html, shown
from tradepipe.plugins.research.runs import feed_closes, metrics_of, read_run
from tradepipe.services.files import write_atomic


@click.command("report")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--benchmark",
    metavar="SYMBOL",
    help="Measure against this symbol of the run's feed (default: [research] benchmark).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report, with its pictures, to this HTML file (works offline).",
)
@click.option(
    "--symbol", metavar="SYMBOL", help="The HTML report's price chart: this symbol's trades."
)
@click.option(
    "--sweep",
    "sweep_id",
    metavar="SWEEP_ID",
    help="Report a sweep instead (`tradepipe sweep` prints its id): best results, a "
    "heatmap of two parameters, the walk-forward.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="With --sweep: how many of the best results.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def report(
    app: AppContext,
    run_id: str | None,
    benchmark: str | None,
    html_path: Path | None,
    symbol: str | None,
    sweep_id: str | None,
    top: int,
    as_json: bool,
) -> None:
    """How RUN did (default: the latest pipeline run, whatever it did): returns, volatility,
    Sharpe, Sortino, drawdown, trades, exposure, turnover, and against a
    benchmark; or, with --sweep, a sweep's results."""
    if sweep_id is not None and (run_id or benchmark or symbol):
        raise click.UsageError("--sweep reports a sweep: give no RUN, --benchmark or --symbol")
    led = command_ledger(app)
    if sweep_id is not None:
        _sweep_report(led, sweep_id, html_path, top, as_json)
        return
    data = read_run(led, run_id)
    bench = (benchmark if benchmark is not None else app.settings.research.benchmark).upper()
    closes = feed_closes(app.settings, app.host, data.run.feed, bench) if bench else []
    metrics = metrics_of(data, closes, bench)
    if html_path is not None:
        chosen = (symbol or _most_traded(data.fills) or "").upper()
        prices = closes if chosen == bench else []
        if chosen and not prices:
            try:
                prices = feed_closes(app.settings, app.host, data.run.feed, chosen)
            except ConfigError:
                if symbol:
                    raise  # asked for: say why it cannot be drawn
                chosen = ""  # a live run's feed cannot be read again: no price chart
        page = report_html(
            title=f"Run {data.run.run_id}: {', '.join(json.loads(data.run.strategies))}",
            metrics=metrics,
            equity=data.equity,
            fills=data.fills,
            benchmark=closes,
            symbol=chosen or None,
            closes=prices,
            settings=json.loads(data.run.settings) if data.run.settings else None,
        )
        write_atomic(html_path, page, 0o644)
    document = {"run_id": data.run.run_id, **metrics.as_dict()}
    if as_json:
        print_json(document)
        return
    values = metrics.as_dict()
    console().print(
        table(
            f"Run {data.run.run_id}",
            ["", ""],
            [(label, shown(values[key], kind)) for label, key, kind in METRIC_ROWS],
        )
    )
    if html_path is not None:
        console().print(f"Wrote the report to {html_path}")


def _most_traded(fills: Any) -> str | None:
    counts: dict[str, int] = {}
    for fill in fills:
        counts[fill.symbol] = counts.get(fill.symbol, 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else None


def _sweep_report(led: Any, sweep_id: str, html_path: Path | None, top: int, as_json: bool) -> None:
    from tradepipe.plugins.research.report import sweep_html
    from tradepipe.plugins.research.summary import read_sweep
    from tradepipe.plugins.research.sweep_cli import print_sweep

    document, results = read_sweep(led, sweep_id, top)
    if html_path is not None:
        write_atomic(html_path, sweep_html(document, results), 0o644)
    if as_json:
        print_json(document)
        return
    print_sweep(document, hint=html_path is None)
    if html_path is not None:
        console().print(f"Wrote the report to {html_path}")
