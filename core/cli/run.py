"""``tradepipe run-pipeline``."""

from __future__ import annotations

import sys
from typing import Any

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.live_view import LiveView
from tradepipe.cli.output import Id, ProgressBar, console, print_json, table
from tradepipe.live.run import build_live_pipeline, run_live
from tradepipe.pipeline import build_pipeline
from tradepipe.pipeline import run_pipeline as run


@click.command("run-pipeline")
@click.option(
    "--live",
    is_flag=True,
    help='Run live on a live feed until stopped (Ctrl-C, SIGTERM); [run] mode = "live".',
)
@click.option(
    "--always",
    is_flag=True,
    help='Live: trade around the clock, whatever the hours ([run] calendar = "always").',
)
@click.option("--broker", metavar="NAME", help="Use this broker for this run ([run] broker).")
@click.option("--feed", metavar="NAME", help="Use this feed for this run ([run] feed).")
@click.option("--env", metavar="NAME", help="Settings environment for this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.option("--quiet", is_flag=True, help="Nothing on the terminal while it runs (services).")
@pass_app
def run_pipeline(
    app: AppContext,
    live: bool,
    always: bool,
    broker: str | None,
    feed: str | None,
    env: str | None,
    as_json: bool,
    no_progress: bool,
    quiet: bool,
) -> None:
    """Run the configured pipeline over its feed (or live) and print a summary from the ledger."""
    if env:
        app.env = env
    overrides: dict[str, Any] = {
        "broker": broker,
        "feed": feed,
        # A feed named on the command line is the feed, live or not.
        "live_feed": feed if live else None,
        "mode": "live" if live else None,
        "calendar": "always" if always else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        app.override("run", **overrides)
    app.setup_logging()
    if app.settings.run.mode == "live":
        summary = _run_live(app, quiet)
    else:
        pipeline = build_pipeline(app.settings, app.host)
        show = not (no_progress or quiet)
        progress = ProgressBar(f"run {pipeline.run.run_id}") if show else None
        try:
            _result, summary = run(pipeline, progress)
        except KeyboardInterrupt:
            # Which run, so its records so far can be found (`ledger runs` has its status).
            click.echo(f"interrupted: run {pipeline.run.run_id}", err=True)
            raise click.exceptions.Exit(130) from None
    if as_json:
        print_json(summary)
    else:
        print_summary(summary)


def _run_live(app: AppContext, quiet: bool) -> dict[str, Any]:
    pipeline = build_live_pipeline(app.settings, app.host)
    run_info = pipeline.run
    where = app.settings.run.status_file
    if not quiet:
        click.echo(
            f"live run {run_info.run_id}: broker {run_info.broker}, feed {run_info.feed}, "
            f"session {run_info.namespace}"
            + (f"; status in {where} (tradepipe status)" if where else "")
            + "; Ctrl-C or SIGTERM stops it",
            err=True,
        )
    if quiet or not sys.stderr.isatty():
        _result, summary = run_live(pipeline)
        return summary
    with LiveView() as view:
        _result, summary = run_live(pipeline, view=view)
    return summary


#: How many of the places decisions stopped the summary table lists (``--json`` has all).
SHOWN_STOPS = 5


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _performance(m: dict[str, Any]) -> list[tuple[str, str]]:
    """The main metrics (``tradepipe report`` has them all), when the run has any."""
    if not m or m.get("days", 0) < 2:
        return []
    return [
        (
            "return",
            f"{_pct(m.get('total_return'))} ({_pct(m.get('annual_return'))} a year), "
            f"max drawdown {_pct(m.get('max_drawdown'))}",
        ),
        (
            "risk-adjusted",
            f"Sharpe {_ratio(m.get('sharpe'))}, Sortino {_ratio(m.get('sortino'))}; "
            f"{m.get('trades', 0)} trades, {_pct(m.get('win_rate'))} won",
        ),
    ]


def _own_account(summary: dict[str, Any]) -> bool:
    """Whether the run traded an account of its own (a replay's simulated one)."""
    return str(summary.get("account", "")).startswith("replay:")


def print_summary(s: dict[str, Any]) -> None:
    orders = s["orders"]
    stops: list[dict[str, Any]] = s.get("not_sent") or []
    rows = [
        ("run", Id(s["run_id"])),
        ("status", f"{s['status']}, env {s.get('env', '?')}, broker {s.get('broker', '?')}"),
        ("account", f"{s.get('account_label', '?')} ({s.get('account', '?')})"),
        ("bars processed", s["bars"]),
        (
            "decisions",
            f"{s['decisions']} ({s.get('decisions_rejected', 0)} rejected as invalid"
            + (
                f", {s['decisions_held']} hold{'' if s['decisions_held'] == 1 else 's'}"
                if s.get("decisions_held")
                else ""
            )
            + ")",
        ),
        (
            "orders",
            f"{orders.get('total', 0)}: {orders.get('submitted', 0)} submitted, "
            f"{orders.get('denied', 0)} denied, {orders.get('filled', 0)} filled, "
            f"{orders.get('canceled', 0)} canceled, {orders.get('rejected', 0)} rejected, "
            f"{orders.get('expired', 0)} expired, {orders.get('open', 0)} open"
            + (f", {orders['unknown']} unknown" if orders.get("unknown") else ""),
        ),
        *(
            ("not sent" if i == 0 else "", f"{stop['count']} by {stop['by']}: {stop['reason']}")
            for i, stop in enumerate(stops[:SHOWN_STOPS])
        ),
        ("fills", f"{s['fills']} (commissions {s.get('commissions', '0')})"),
        ("cash", s.get("cash")),
        ("equity", s.get("equity")),
        # An account kept across runs (a paper account file, a broker's) made and
        # lost money before this run: its realized P&L is the account's figure
        # (a paper file's since it began, IBKR's the day's), not the run's.
        (
            "realized P&L" if _own_account(s) else "realized P&L (account)",
            s.get("realized_pnl"),
        ),
        ("unrealized P&L", s.get("unrealized_pnl")),
        *_performance(s.get("metrics") or {}),
        ("ledger", s.get("ledger", s.get("source"))),
    ]
    out = console()
    out.print(table("Run summary", ["", ""], rows))
    why = nothing_sent(s)
    if why:
        out.print(why, markup=False, highlight=False)
    positions = s.get("positions") or []
    if positions:
        out.print(
            table(
                "Final positions",
                ["symbol", "quantity", "avg cost", "mark", "market value", "unrealized P&L"],
                [
                    (
                        p["symbol"],
                        p["quantity"],
                        p.get("avg_cost"),
                        p.get("mark_price"),
                        p.get("market_value"),
                        p.get("unrealized_pnl"),
                    )
                    for p in positions
                ],
            )
        )
    else:
        out.print("No open positions.")


def nothing_sent(s: dict[str, Any]) -> str:
    """Why a run that made decisions sent no order to the broker, in one line ("" otherwise)."""
    made = s.get("decisions", 0) + s.get("decisions_rejected", 0)
    if not made or s["orders"].get("submitted"):
        return ""
    parts = [
        f"{stop['count']} stopped by {stop['by']} ({stop['reason']})"
        for stop in s.get("not_sent") or []
    ]
    if s.get("decisions_held"):
        parts.append(f"{s['decisions_held']} held")
    if s.get("decisions_rejected"):
        parts.append(f"{s['decisions_rejected']} rejected as invalid")
    because = "; ".join(parts) if parts else "tradepipe explain shows each decision"
    return f"No order was sent to the broker: {because}."
