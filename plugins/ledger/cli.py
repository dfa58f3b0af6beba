"""``tradepipe ledger …``: read what runs recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, as_id, console, print_json, table
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.logs import mask_account
from tradepipe.money import fmt, money_text
from tradepipe.plugins.ledger.history import fill_kind
from tradepipe.plugins.ledger.queries import LATEST, Ledger, open_ledger
from tradepipe.plugins.ledger.schema import LotRealizationRow, TaxLotRow
from tradepipe.plugins.tax.documents import lots_document
from tradepipe.plugins.tax.lots import Method
from tradepipe.plugins.tax.lots_db import Rebuilt, Totals, rebuilt_lots, tax_report
from tradepipe.services.figures import position_figures, shown
from tradepipe.sink import account_fields, account_key_shown, account_label, account_of


def command_ledger(app: AppContext) -> Ledger:
    """The ledger for this command, closed when the command ends.

    :raises PersistenceError: there is no ledger yet.
    """
    ledger = click.get_current_context().with_resource(
        open_ledger(app.settings, app.host, required=True)
    )
    assert ledger is not None  # required: no ledger is an error
    return ledger


def _run_id(ledger: Ledger, run_id: str | None) -> str:
    run = ledger.run(run_id)
    if run is None:
        if run_id and run_id != LATEST:
            raise ConfigError(f"no run {run_id!r} in the ledger at {ledger.where}", key="run")
        raise PersistenceError(f"the ledger at {ledger.where} has no runs yet")
    return run.run_id


run_option = click.option(
    "--run",
    "run_id",
    metavar="RUN_ID",
    help="A run id, or latest (the default): the latest pipeline run, whatever it did.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
limit_option = click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")


@click.group()
def ledger() -> None:
    """Read the ledger: runs, decisions, orders, fills, positions."""


@ledger.command("runs")
@json_option
@limit_option
@pass_app
def runs(app: AppContext, as_json: bool, limit: int | None) -> None:
    """The most recent runs."""
    rows = command_ledger(app).runs(limit or 20)
    data = [
        {
            # The settings a run ran with are long: `tradepipe report RUN --html` shows them.
            **r.model_dump(mode="json", exclude={"settings"}),
            "account_id": mask_account(r.account_id) if r.account_id else None,
            **account_fields(account_of(r)),
        }
        for r in rows
    ]
    if as_json:
        print_json(data)
        return
    console().print(
        table(
            "Runs",
            ["run", "started", "env", "broker", "account", "bars", "status"],
            [
                (
                    Id(r.run_id),
                    f"{r.started_at:%Y-%m-%d %H:%M}",
                    r.env,
                    r.broker,
                    d["account_label"],
                    r.bars,
                    r.status,
                )
                for r, d in zip(rows, data, strict=True)
            ],
        )
    )


@ledger.command("accounts")
@json_option
@pass_app
def accounts(app: AppContext, as_json: bool) -> None:
    """What the ledger's runs traded against, or trades were imported for: each
    replay, paper account file and broker account, the latest first (what
    --account selects)."""
    found = [
        {**a, "account": account_key_shown(a["account"])} for a in command_ledger(app).accounts()
    ]
    if as_json:
        print_json(shown(found))
        return
    console().print(
        table(
            "Accounts",
            ["account", "what", "runs", "imports", "first", "last"],
            [
                (
                    as_id(a["account"]),
                    a["label"],
                    a["runs"],
                    a["imports"],
                    f"{a['first']:%Y-%m-%d %H:%M}",
                    f"{a['last']:%Y-%m-%d %H:%M}",
                )
                for a in found
            ],
        )
    )


@ledger.command("decisions")
@run_option
@json_option
@limit_option
@pass_app
def decisions(app: AppContext, run_id: str | None, as_json: bool, limit: int | None) -> None:
    """Decisions of a run."""
    led = command_ledger(app)
    rid = _run_id(led, run_id)
    rows = led.decisions(rid, limit)
    if as_json:
        print_json([r.model_dump(mode="json", exclude={"id"}) for r in rows])
        return
    console().print(
        table(
            f"Decisions of {rid}",
            ["decision", "time", "source", "action", "symbol", "confidence"],
            [
                (
                    Id(r.decision_id),
                    r.created_at.isoformat(),
                    r.source,
                    r.action,
                    r.symbol,
                    r.confidence,
                )
                for r in rows
            ],
        )
    )


@ledger.command("rejected")
@run_option
@json_option
@limit_option
@pass_app
def rejected(app: AppContext, run_id: str | None, as_json: bool, limit: int | None) -> None:
    """What sources produced that was not a valid decision (never sent), and why."""
    led = command_ledger(app)
    rid = _run_id(led, run_id)
    rows = led.rejected_decisions(rid)[:limit]
    if as_json:
        print_json([r.model_dump(mode="json", exclude={"id"}) for r in rows])
        return
    console().print(
        table(
            f"Rejected decisions of {rid}",
            ["time", "source", "error", "raw"],
            [(r.ts.isoformat(), r.source, r.error, _short(r.raw)) for r in rows],
        )
    )


def _short(raw: str | None, width: int = 80) -> str:
    text = raw or ""
    return text if len(text) <= width else text[: width - 1] + "…"


@ledger.command("orders")
@run_option
@json_option
@limit_option
@pass_app
def orders(app: AppContext, run_id: str | None, as_json: bool, limit: int | None) -> None:
    """Orders of a run with their current status."""
    led = command_ledger(app)
    rid = _run_id(led, run_id)
    rows = led.orders(rid, limit)
    if as_json:
        print_json(
            [
                {**o.model_dump(mode="json", exclude={"id"}), "status": status, "reason": reason}
                for o, status, reason in rows
            ]
        )
        return
    console().print(
        table(
            f"Orders of {rid}",
            ["order", "decision", "side", "quantity", "symbol", "type", "status", "reason"],
            [
                (
                    Id(o.client_order_id),
                    as_id(o.decision_id),
                    o.side,
                    fmt(o.quantity),
                    o.symbol,
                    o.order_type,
                    status,
                    reason,
                )
                for o, status, reason in rows
            ],
        )
    )


@ledger.command("fills")
@run_option
@json_option
@limit_option
@pass_app
def fills(app: AppContext, run_id: str | None, as_json: bool, limit: int | None) -> None:
    """Fills of a run."""
    led = command_ledger(app)
    rid = _run_id(led, run_id)
    rows = led.fills(rid, limit)
    if as_json:
        print_json([f.model_dump(mode="json", exclude={"id"}) for f in rows])
        return
    console().print(
        table(
            f"Fills of {rid}",
            [
                "execution",
                "order",
                "time",
                "kind",
                "side",
                "quantity",
                "symbol",
                "price",
                "commission",
            ],
            [
                (
                    Id(f.execution_id),
                    as_id(f.client_order_id),
                    f.ts.isoformat(),
                    fill_kind(f),
                    f.side,
                    fmt(f.quantity),
                    f.symbol,
                    fmt(f.price),
                    fmt(f.commission),
                )
                for f in rows
            ],
        )
    )


@ledger.command("positions")
@run_option
@json_option
@pass_app
def positions(app: AppContext, run_id: str | None, as_json: bool) -> None:
    """Positions and account at the end of a run."""
    led = command_ledger(app)
    rid = _run_id(led, run_id)
    rows, account = led.positions(rid)
    data: dict[str, Any] = {
        "run_id": rid,
        "positions": [position_figures(p) for p in rows],
        "account": (
            {
                **shown(account.model_dump(exclude={"id", "run_id"})),
                "account_id": mask_account(account.account_id),
            }
            if account
            else None
        ),
    }
    if as_json:
        print_json(data)
        return
    if not data["positions"]:
        console().print(f"No open positions at the end of {rid}.")
    else:
        _positions_table(rid, data["positions"])
    if account:
        console().print(
            f"cash {money_text(account.cash)}  equity {money_text(account.equity)}  "
            f"realized {money_text(account.realized_pnl)}  "
            f"unrealized {money_text(account.unrealized_pnl)}"
        )


def _positions_table(run_id: str, positions: list[dict[str, Any]]) -> None:
    console().print(
        table(
            f"Positions at the end of {run_id}",
            ["symbol", "quantity", "avg cost", "mark", "market value", "unrealized P&L"],
            [
                (
                    p["symbol"],
                    p["quantity"],
                    p["avg_cost"],
                    p["mark_price"],
                    p["market_value"],
                    p["unrealized_pnl"],
                )
                for p in positions
            ],
        )
    )


# Tax lots: rebuilt from every fill of every run each time they are shown.

method_option = click.option(
    "--method",
    type=click.Choice([m.value for m in Method]),
    default=Method.FIFO.value,
    show_default=True,
    help="Which lots a sale relieves first (highest cost first for hifo).",
)


def account_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--account`` and ``--run``: whose trades a report covers (default: the latest run's)."""
    command = click.option(
        "--run",
        "run_id",
        metavar="RUN_ID",
        help="The account this run traded against (default: the latest run's).",
    )(command)
    return click.option(
        "--account",
        metavar="ACCOUNT",
        help="An account from `tradepipe ledger accounts`: its key, account id "
        "(masked or not), paper account file name, or a replay's run id.",
    )(command)


@dataclass
class Lots:
    """One account's lots as rebuilt now, and which account that is."""

    account: str
    open: list[TaxLotRow]
    closed: list[LotRealizationRow]
    notes: tuple[str, ...] = ()
    #: Each imported sale's reporting, by its execution id (the Form 8949 box).
    reporting: dict[str, str] = field(default_factory=dict)

    def say(self, as_json: bool) -> None:
        """Tell a person (on stderr, so JSON stays clean) which account this is, and
        each sale whose named lots could not be relieved as named."""
        if not as_json and not self.account:
            click.echo("no account yet: the ledger has no run and no import", err=True)
        elif not as_json:
            shown_key = account_key_shown(self.account)
            click.echo(f"account: {account_label(self.account)} ({shown_key})", err=True)
            for note in self.notes:
                click.echo(f"note: {note}", err=True)

    def head(self) -> dict[str, Any]:
        return {**account_fields(self.account), "notes": list(self.notes)}


def account_lots(
    app: AppContext, method: str, account: str | None, run_id: str | None, as_json: bool
) -> Lots:
    """The lots of one account (the one named, else ``run_id``'s, else the latest
    run's) under ``[tax]``, having told a person which it is."""
    options = app.settings.tax.wash_sale_options
    led = command_ledger(app)
    try:
        key = led.account(account, run_id)
        found = Lots(
            key,
            *rebuilt_lots(led.engine, Method(method), led.where, key, wash_sale_options=options)
            if key
            else Rebuilt([], []),
        )
    finally:
        led.engine.dispose()  # rows are loaded: no connection left to the collector
    found.say(as_json)
    return found


def print_open_lots(method: str, rows: list[TaxLotRow]) -> None:
    console().print(
        table(
            f"Open lots ({method})",
            ["lot", "symbol", "side", "quantity", "acquired", "basis", "wash adj."],
            [
                (
                    Id(r.name or r.lot_id),
                    r.symbol,
                    r.side,
                    fmt(r.quantity),
                    r.acquired.isoformat(),
                    money_text(r.basis),
                    money_text(r.wash_adjustment),
                )
                for r in rows
            ],
        )
    )


@ledger.command("lots")
@method_option
@click.option("--open", "which", flag_value="open", help="Only the open lots.")
@click.option("--closed", "which", flag_value="closed", help="Only the closed (realized) lots.")
@click.option(
    "--year",
    type=click.IntRange(1900, 2200),
    metavar="YYYY",
    help="Lots sold (open lots: bought) that year.",
)
@account_options
@json_option
@pass_app
def lots(
    app: AppContext,
    method: str,
    which: str | None,
    year: int | None,
    account: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """Tax lots from one account's fills: open lots and realized gains."""
    found = account_lots(app, method, account, run_id, as_json)
    open_rows, closed_rows = found.open, found.closed
    if year is not None:
        open_rows = [r for r in open_rows if r.purchased.year == year]
        closed_rows = [r for r in closed_rows if r.sold.year == year]
    data = {**found.head(), **lots_document(method, open_rows, closed_rows, which)}
    if as_json:
        print_json(data)
        return
    if "open" in data:
        print_open_lots(method, open_rows)
    if "closed" in data:
        console().print(
            table(
                f"Closed lots ({method})",
                [
                    "lot",
                    "symbol",
                    "quantity",
                    "acquired",
                    "sold",
                    "proceeds",
                    "basis",
                    "W adj.",
                    "gain",
                    "term",
                ],
                [
                    (
                        Id(r.name or r.lot_id),
                        r.symbol,
                        fmt(r.quantity),
                        r.acquired.isoformat(),
                        r.sold.isoformat(),
                        money_text(r.proceeds),
                        money_text(r.basis),
                        money_text(r.adjustment),
                        money_text(r.gain),
                        r.term,
                    )
                    for r in closed_rows
                ],
            )
        )


def _totals_json(totals: Totals) -> dict[str, str | None]:
    return {
        "proceeds": money_text(totals.proceeds),
        "basis": money_text(totals.basis),
        "short_term": money_text(totals.short_term),
        "long_term": money_text(totals.long_term),
        "total": money_text(totals.total),
        "wash_sale_disallowed": money_text(totals.disallowed),
    }


@ledger.command("tax-report")
@click.option(
    "--year", type=click.IntRange(1900, 2200), required=True, metavar="YYYY", help="The tax year."
)
@method_option
@account_options
@json_option
@pass_app
def tax_report_command(
    app: AppContext,
    year: int,
    method: str,
    account: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """Realized short- and long-term gains and disallowed wash-sale losses of a year."""
    found = account_lots(app, method, account, run_id, as_json)
    per_symbol, overall = tax_report(found.closed, year)
    data = {
        **found.head(),
        "year": year,
        "method": method,
        "symbols": {symbol: _totals_json(t) for symbol, t in per_symbol.items()},
        "totals": _totals_json(overall),
    }
    if as_json:
        print_json(data)
        return
    rows = [(s, *_totals_json(t).values()) for s, t in per_symbol.items()]
    rows.append(("total", *_totals_json(overall).values()))
    console().print(
        table(
            f"Realized gains in {year} ({method})",
            ["symbol", "proceeds", "basis", "short-term", "long-term", "total", "wash disallowed"],
            rows,
        )
    )
