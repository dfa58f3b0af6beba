"""``tradepipe broker …``: ask the configured broker directly, whichever it is.

Each command builds the broker ``[run] broker`` names (``--broker NAME`` picks
another for one invocation), connects it through
:func:`~tradepipe.pipeline.connect_broker` (so a live account is refused unless
``[run] allow_live``), makes its request, prints the answer and disconnects,
whatever happened. Account numbers are masked in tables and in JSON alike. An
operation the broker does not offer raises
:class:`~tradepipe.errors.BrokerCapabilityError`, reported like every other
error: one line, exit code 1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table
from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.bar_csv import write_csv
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import as_id, console, print_json, table
from tradepipe.errors import TradepipeError
from tradepipe.logs import mask_account, redact_accounts
from tradepipe.orders import OrderStatus
from tradepipe.pipeline import connect_broker, make_component
from tradepipe.portfolio import Position
from tradepipe.services.broker import await_final, broker_problem
from tradepipe.services.figures import model_figures, position_figures, shown
from tradepipe.services.records import follow_records, named_fills, record_end

log = logging.getLogger(__name__)

#: Seconds between the questions ``cancel`` asks while it waits for a confirmation.
# Module attributes rather than direct calls, so tests can stand in for the clock.

F = TypeVar("F", bound=Callable[..., Any])
Columns = Sequence[tuple[str, str]]


def _options(command: F) -> F:
    """The options every ``broker`` command takes."""
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    return click.option(
        "--broker",
        "broker_name",
        metavar="NAME",
        help="Use this broker for this command ([run] broker).",
    )(command)


@contextlib.contextmanager
def _connected(
    app: AppContext, broker_name: str | None, *, ready: bool = True
) -> Iterator[tuple[Broker, BrokerStatus]]:
    """The configured broker, connected, and disconnected again on the way out.

    With ``ready`` a broker that is not connected and logged in raises.
    """
    if broker_name:
        app.override("run", broker=broker_name)
    app.setup_logging()
    settings = app.settings
    adapter: Broker = make_component(app.host, settings, "broker", settings.run.broker)
    try:
        status = connect_broker(adapter, settings)
        problem = broker_problem(adapter, status)
        if ready and problem is not None:
            raise problem
        yield adapter, status
    except BaseException:
        # The command's own error is the one to show, not a failed disconnect after it.
        try:
            adapter.disconnect()
        except Exception as exc:
            log.warning("could not disconnect from broker %s: %s", adapter.name, exc)
        raise
    adapter.disconnect()


# -- printing ------------------------------------------------------------------


def _cell(value: Any, key: str | None = None) -> str | None:
    return None if value is None else str(shown(value, key))


#: Fields a person copies into another command: never wrapped in a table.
_IDS = frozenset({"client_order_id", "broker_order_id", "execution_id"})


def _table(title: str, columns: Columns, rows: Sequence[dict[str, Any]]) -> Table:
    return table(
        title,
        [header for header, _key in columns],
        [
            [
                as_id(_cell(row.get(key), key)) if key in _IDS else _cell(row.get(key), key)
                for _header, key in columns
            ]
            for row in rows
        ],
    )


def _pairs(title: str, pairs: Sequence[tuple[str, Any]]) -> Table:
    return table(title, ["", ""], [(name, _cell(value)) for name, value in pairs])


def _say(text: str) -> None:
    console().print(escape(text))


def _show(
    title: str, columns: Columns, rows: list[dict[str, Any]], as_json: bool, empty: str
) -> None:
    if as_json:
        print_json(rows)
    elif rows:
        console().print(_table(title, columns, rows))
    else:
        _say(empty)


def _masked(account_id: str | None) -> str | None:
    return mask_account(account_id) if account_id else None


# -- commands ------------------------------------------------------------------


@click.group("broker")
def broker() -> None:
    """Ask the configured broker: status, account, positions, orders, market data."""


@broker.command("status")
@_options
@pass_app
def status(app: AppContext, broker_name: str | None, as_json: bool) -> None:
    """Whether the broker can be used, and with which account.

    Exits 1 when it is not connected or not logged in, saying what to do.
    """
    with _connected(app, broker_name, ready=False) as (adapter, state):
        problem = broker_problem(adapter, state)
    data = {
        "broker": adapter.name,
        "connected": state.connected,
        "authenticated": state.authenticated,
        "account_id": _masked(state.account_id),
        "paper": state.is_paper,
        "message": redact_accounts(state.message),
    }
    if as_json:
        print_json(data)
    else:
        console().print(
            _pairs(
                "Broker status",
                [
                    ("broker", adapter.name),
                    ("connected", "yes" if state.connected else "no"),
                    ("authenticated", "yes" if state.authenticated else "no"),
                    ("account", mask_account(state.account_id)),
                    ("account type", "paper" if state.is_paper else "live"),
                    ("message", data["message"]),
                ],
            )
        )
    if problem is not None:
        raise problem


@broker.command("logout")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_options
@pass_app
def logout(app: AppContext, yes: bool, broker_name: str | None, as_json: bool) -> None:
    """End the broker's session (IBKR: POST /logout).

    A Client Portal Gateway then needs a person to log in again in a browser,
    so it asks first unless --yes is given.
    """
    if broker_name:
        app.override("run", broker=broker_name)
    app.setup_logging()
    settings = app.settings
    adapter: Broker = make_component(app.host, settings, "broker", settings.run.broker)
    if not yes and not click.confirm(
        f"End the session of broker {adapter.name!r}? Using it again needs a new login",
        default=False,
    ):
        raise TradepipeError("not logged out (answer y, or pass --yes)")
    try:
        message = adapter.logout()
    finally:
        adapter.disconnect()
    if as_json:
        print_json({"broker": adapter.name, "message": message})
    else:
        _say(message)


@broker.command("accounts")
@_options
@pass_app
def accounts(app: AppContext, broker_name: str | None, as_json: bool) -> None:
    """The account id (masked) and its cash, equity and buying power."""
    with _connected(app, broker_name) as (adapter, state):
        summary = adapter.account()
    ids = [mask_account(i) for i in dict.fromkeys((state.account_id, summary.account_id)) if i]
    money = {**model_figures(summary), "account_id": mask_account(summary.account_id)}
    if as_json:
        print_json(
            {"broker": adapter.name, "paper": state.is_paper, "accounts": ids, "summary": money}
        )
        return
    kind = "paper" if state.is_paper else "live"
    console().print(
        _pairs(
            f"Account {money['account_id']} at {adapter.name} ({kind})",
            [
                ("accounts", ", ".join(ids)),
                ("currency", money["currency"]),
                ("cash", money["cash"]),
                ("equity", money["equity"]),
                ("buying power", money["buying_power"]),
                ("gross position value", money["gross_position_value"]),
                ("realized P&L", money["realized_pnl"]),
                ("unrealized P&L", money["unrealized_pnl"]),
                ("as of", money["ts"]),
            ],
        )
    )


def position_dict(p: Position) -> dict[str, Any]:
    """A broker's position with the same keys and figures as the ledger's positions."""
    return position_figures(p)


@broker.command("positions")
@click.argument("symbol", required=False)
@_options
@pass_app
def positions(app: AppContext, symbol: str | None, broker_name: str | None, as_json: bool) -> None:
    """What the account holds: every position, or SYMBOL's."""
    with _connected(app, broker_name) as (adapter, _state):
        held = adapter.positions()
    if symbol:
        symbol = symbol.upper()
        held = [p for p in held if p.symbol == symbol]
    _show(
        f"Positions at {adapter.name}",
        [
            ("symbol", "symbol"),
            ("quantity", "quantity"),
            ("avg cost", "avg_cost"),
            ("mark", "mark_price"),
            ("market value", "market_value"),
            ("unrealized P&L", "unrealized_pnl"),
            ("realized P&L", "realized_pnl"),
        ],
        [position_dict(p) for p in held],
        as_json,
        f"No position in {symbol}." if symbol else "No open positions.",
    )


@broker.command("orders")
@_options
@pass_app
def orders(app: AppContext, broker_name: str | None, as_json: bool) -> None:
    """Open orders, as the broker sees them."""
    with _connected(app, broker_name) as (adapter, status):
        # Names the ledger's bracket exits.
        follow_records(app.settings, app.host, adapter, status.account_id)
        working = adapter.open_orders()
    _show(
        f"Open orders at {adapter.name}",
        [
            ("order", "client_order_id"),
            ("broker id", "broker_order_id"),
            ("symbol", "symbol"),
            ("side", "side"),
            ("quantity", "quantity"),
            ("filled", "filled_quantity"),
            ("type", "order_type"),
            ("limit", "limit_price"),
            ("stop", "stop_price"),
            ("status", "status"),
        ],
        [model_figures(o) for o in working],
        as_json,
        "No open orders.",
    )


def _timestamp(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    """An ISO-8601 time with a UTC offset (a time without one would be a guess)."""
    if value is None:
        return None
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    if ts.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset; add one, e.g. 2026-03-02T14:30:00Z")
    return ts


@broker.command("trades")
@click.option(
    "--since",
    metavar="ISO8601",
    callback=_timestamp,
    help="Only fills at or after this time, e.g. 2026-03-02T14:30:00Z.",
)
@_options
@pass_app
def trades(
    app: AppContext, since: dt.datetime | None, broker_name: str | None, as_json: bool
) -> None:
    """Fills (executions) the broker reports, under the order ids the ledger knows them by."""
    with _connected(app, broker_name) as (adapter, status):
        fills = named_fills(app.settings, app.host, adapter, status.account_id, since)
    _show(
        f"Fills at {adapter.name}",
        [
            ("time", "ts"),
            ("execution", "execution_id"),
            ("order", "client_order_id"),
            ("symbol", "symbol"),
            ("side", "side"),
            ("quantity", "quantity"),
            ("price", "price"),
            ("commission", "commission"),
        ],
        [model_figures(f) for f in fills],
        as_json,
        f"No fills since {since.isoformat()}." if since else "No fills.",
    )


@broker.command("quote")
@click.argument("symbols", nargs=-1, required=True)
@_options
@pass_app
def quote(
    app: AppContext, symbols: tuple[str, ...], broker_name: str | None, as_json: bool
) -> None:
    """Latest quotes of SYMBOLS."""
    wanted = list(dict.fromkeys(s.upper() for s in symbols))
    with _connected(app, broker_name) as (adapter, _state):
        quotes = adapter.quotes(wanted)
    rows = [model_figures(q) for q in quotes]
    if as_json:
        print_json(rows)
        return
    if rows:
        columns = [
            ("symbol", "symbol"),
            ("bid", "bid"),
            ("ask", "ask"),
            ("last", "last"),
            ("bid size", "bid_size"),
            ("ask size", "ask_size"),
            ("volume", "volume"),
            ("time", "ts"),
        ]
        console().print(_table(f"Quotes from {adapter.name}", columns, rows))
    missing = [s for s in wanted if s not in {q.symbol for q in quotes}]
    if missing:
        _say(f"No quote for {', '.join(missing)}.")


@broker.command("history")
@click.argument("symbol")
@click.option(
    "--bars",
    "count",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="How many bars, the most recent.",
)
@click.option("--bar-size", default="1d", show_default=True, help="e.g. 1m, 5m, 1h, 1d.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the bars to FILE in the csv feed's format instead of printing them.",
)
@_options
@pass_app
def history(
    app: AppContext,
    symbol: str,
    count: int,
    bar_size: str,
    csv_path: Path | None,
    broker_name: str | None,
    as_json: bool,
) -> None:
    """Historical bars of SYMBOL, most recent last."""
    symbol = symbol.upper()
    with _connected(app, broker_name) as (adapter, _state):
        bars = adapter.history(symbol, bars=count, bar_size=bar_size)
    if csv_path is not None:
        _write_history(symbol, bars, csv_path, as_json)
        return
    _show(
        f"{symbol} {bar_size} bars from {adapter.name}",
        [
            ("time", "ts"),
            ("open", "open"),
            ("high", "high"),
            ("low", "low"),
            ("close", "close"),
            ("volume", "volume"),
        ],
        [{**b._asdict(), "ts": b.ts.isoformat()} for b in bars],
        as_json,
        f"No bars for {symbol}.",
    )


def _write_history(symbol: str, bars: Sequence[Any], path: Path, as_json: bool) -> None:
    written = 0
    if bars:
        try:
            written = write_csv(path, bars)
        except OSError as exc:
            raise TradepipeError(
                f"cannot write {path}: {exc.strerror or exc}", path=str(path)
            ) from exc
    if as_json:
        print_json({"symbol": symbol, "bars": written, "path": str(path) if written else None})
    elif written:
        _say(f"Wrote {written} bars of {symbol} to {path}.")
    else:
        _say(f"No bars for {symbol}; {path} not written.")


def _filters(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value:
        code, sep, setting = item.partition("=")
        code = code.strip()
        if not sep or not code:
            raise click.BadParameter(f"{item!r}: expected CODE=VALUE, e.g. priceAbove=5")
        if code in out:
            raise click.BadParameter(f"filter {code!r} is given twice")
        out[code] = setting.strip()
    return out


@broker.command("scan")
@click.option("--type", "scan_type", metavar="CODE", help="Scanner, e.g. TOP_PERC_GAIN.")
@click.option("--location", metavar="CODE", help="Where to scan, e.g. STK.US.MAJOR.")
@click.option("--instrument", metavar="TYPE", help="Instrument type, e.g. STK.")
@click.option(
    "--filter",
    "filters",
    metavar="CODE=VALUE",
    multiple=True,
    callback=_filters,
    help="A scanner filter, e.g. priceAbove=5 (repeatable).",
)
@_options
@pass_app
def scan(
    app: AppContext,
    scan_type: str | None,
    location: str | None,
    instrument: str | None,
    filters: dict[str, str],
    broker_name: str | None,
    as_json: bool,
) -> None:
    """Run the broker's market scanner.

    Only the options given are passed on; the broker's defaults fill the rest.
    """
    given = {"instrument": instrument, "type": scan_type, "location": location}
    params: dict[str, Any] = {key: value for key, value in given.items() if value}
    if filters:
        params["filters"] = filters
    with _connected(app, broker_name) as (adapter, _state):
        results = adapter.scan(**params)
    rows = [shown(dict(row)) for row in results]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    _show(
        f"Scanner results from {adapter.name}", [(k, k) for k in keys], rows, as_json, "No results."
    )


@broker.command("cancel")
@click.argument("client_order_id")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the broker to confirm (0: do not wait).",
)
@_options
@pass_app
def cancel(
    app: AppContext, client_order_id: str, wait: float, broker_name: str | None, as_json: bool
) -> None:
    """Cancel an order, then wait a little for the broker to confirm.

    The broker first answers pending_cancel: the order may still fill until the
    broker confirms. Its status is asked for every half second for up to
    --wait seconds, and the last one seen is printed.
    """
    cid = client_order_id
    with _connected(app, broker_name) as (adapter, status):
        # The ledger may know the order's broker id: then no order-list read is needed.
        follow_records(app.settings, app.host, adapter, status.account_id)
        update = adapter.cancel(cid)
        log.info("cancel of order %s requested at %s: %s", cid, adapter.name, update.status)
        if not as_json:
            _say(
                f"Cancel of order {cid} requested: {update.status}. It is not final until "
                "the broker confirms it."
            )
            if not update.status.is_terminal and wait > 0:
                _say(f"Waiting up to {wait:g}s for the broker to confirm…")
        final, known = update.status, True
        if not update.status.is_terminal and wait > 0:
            final, known = await_final(adapter, cid, update.status, wait)
        recorded = record_end(
            app.settings, app.host, adapter, cid, final=final, known=known, requested=update
        )
    log.info("order %s at %s: %s after the cancel request", cid, adapter.name, final)
    if as_json:
        print_json(
            {
                "client_order_id": cid,
                "broker": adapter.name,
                "requested": update.status.value,
                "status": final.value,
                "final": final.is_terminal,
                "known": known,
                "reason": update.reason,
                "ledger_run": recorded,
            }
        )
        return
    if not known:
        _say(f"The broker no longer reports order {cid}; its last status was {final}.")
    elif final is OrderStatus.CANCELED:
        _say(f"Order {cid} is canceled.")
    elif final.is_terminal:
        _say(f"Order {cid} ended {final} before the cancel took effect.")
    else:
        _say(
            f"Order {cid} is still {final}: the cancel is not confirmed yet. "
            "Check again with `tradepipe broker orders`."
        )
    if recorded:
        _say(f"The order's end is in the ledger (reconciliation run {recorded}).")
