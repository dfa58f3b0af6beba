"""``tradepipe order stock|options …``: one manual order through the whole pipeline.

The order is a decision like any strategy's (source ``cli``, confidence 100):
sized (the quantity given), judged by every configured risk filter, made
durable in the ledger, sent to the configured broker, and recorded with its
verdicts and status. ``--dry-run`` judges without sending or writing;
``--what-if`` also asks the broker for its preview (commission, margin, the
position after). A live account is refused unless ``[run] allow_live``.

An options order is legs with exact strikes and expiries, or a named strategy
whose legs the broker's option chain chooses (:mod:`~tradepipe.options.orders`,
which the REST API's ``POST /orders/options`` runs too).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from contextlib import AbstractContextManager
from decimal import Decimal, InvalidOperation
from typing import Any

import click
from pydantic import ValidationError
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.outcome import report, report_rejected
from tradepipe.cli.output import Id, as_id, console, print_json, table
from tradepipe.clock import Clock, SystemClock
from tradepipe.decision_schema import STRATEGY_LEGS, OptionStrategySpec
from tradepipe.decisions import Decision, RejectedDecision, bracket_problem
from tradepipe.direct import Direct, Outcome, direct_run
from tradepipe.errors import BrokerRejectedError, ConfigError
from tradepipe.instruments import Option
from tradepipe.logs import redact_accounts
from tradepipe.options.orders import option_fields, place_strategy, strategy_document
from tradepipe.order_rules import Change, OrderRules
from tradepipe.pipeline import connect_broker, make_component

log = logging.getLogger(__name__)
ORDER_TYPES = ("market", "limit", "stop", "stop-limit")
#: A decision document's fields as ``tradepipe order``'s options, for error messages.
OPTION_NAMES = {
    "symbol": "UNDERLYING",
    "action": "--side",
    "quantity": "--quantity",
    "order_type": "--type",
    "limit_price": "--limit-price",
    "stop_price": "--stop-price",
    "tif": "--tif",
    "rationale": "--rationale",
    "lots": "--lot",
}


@click.group("order")
def order() -> None:
    """Place one order through sizing, the risk filters and the configured broker."""


def _common(command: Any) -> Any:
    """The options every ``order`` command takes (applied bottom-up)."""
    for option in reversed(
        [
            click.option(
                "--type",
                "order_type",
                type=click.Choice(ORDER_TYPES),
                default="market",
                show_default=True,
            ),
            click.option("--limit-price", type=Decimal, help="Limit price (limit, stop-limit)."),
            click.option("--stop-price", type=Decimal, help="Stop price (stop, stop-limit)."),
            click.option(
                "--tif", type=click.Choice(["day", "gtc"]), default="day", show_default=True
            ),
            click.option(
                "--outside-rth", is_flag=True, help="Allow execution outside regular hours."
            ),
            click.option(
                "--rationale", default="manual order from the command line", show_default=True
            ),
            click.option(
                "--what-if", is_flag=True, help="Ask the broker for a preview; send nothing."
            ),
            click.option(
                "--dry-run", is_flag=True, help="Judge with the risk filters; send nothing."
            ),
            click.option(
                "--wait",
                type=click.FloatRange(0, 600),
                default=0.0,
                help="Seconds to wait for the broker to fill or finish the order.",
            ),
            click.option(
                "--broker", "broker_name", metavar="NAME", help="Use this broker ([run] broker)."
            ),
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        ]
    ):
        command = option(command)
    return command


@order.command("stock")
@click.argument("symbol")
@click.option("--side", type=click.Choice(["buy", "sell"]), required=True)
@click.option("--quantity", type=Decimal, required=True, help="Shares.")
@click.option("--take-profit", type=Decimal, help="Attach a take-profit limit (bracket).")
@click.option("--stop-loss", type=Decimal, help="Attach a protective stop (bracket).")
@click.option(
    "--lot",
    "lots",
    multiple=True,
    metavar="LOT",
    help="A tax lot this order closes, by the name `tradepipe tax lots --open` shows "
    "(repeat for several, in the order to relieve them).",
)
@_common
@pass_app
def stock(
    app: AppContext,
    /,
    symbol: str,
    side: str,
    quantity: Decimal,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    lots: tuple[str, ...],
    **common: Any,
) -> None:
    """Buy or sell SYMBOL's stock.

    A sale relieves its tax lots first in, first out unless --lot names them:

      tradepipe order stock AAPL --side sell --quantity 50 --lot AAPL/2025-03-10/100@187.50
    """
    _place(
        app,
        dict(
            symbol=symbol,
            action=side,
            quantity=quantity,
            take_profit=take_profit,
            stop_loss=stop_loss,
            lots=lots,
        ),
        **common,
    )


@order.command("options")
@click.argument("underlying")
@click.option(
    "--leg",
    "legs",
    multiple=True,
    metavar="SPEC",
    help='One leg: "buy|sell [RATIO] C|P STRIKE YYYY-MM-DD"; repeat for a combo.',
)
@click.option(
    "--strategy",
    type=click.Choice(tuple(STRATEGY_LEGS)),
    metavar="NAME",
    help="Instead of legs, a named strategy whose legs the broker's option chain chooses: "
    f"{', '.join(STRATEGY_LEGS)}.",
)
@click.option(
    "--expiry",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Strategy: the expiry (it must be listed).",
)
@click.option(
    "--dte", type=int, metavar="N", help="Strategy: the listed expiry nearest N days away."
)
@click.option(
    "--strikes",
    metavar="K[,K…]",
    help="Strategy: its strikes, comma-separated; each the nearest listed.",
)
@click.option(
    "--delta",
    type=float,
    metavar="X",
    help="Strategy: instead of strikes, its first leg by delta (0 < X < 1).",
)
@click.option(
    "--width",
    type=Decimal,
    metavar="W",
    help="Strategy by delta: how far in strike a spread's or condor's other legs are.",
)
@click.option(
    "--side",
    type=click.Choice(["buy", "sell"]),
    default="buy",
    show_default=True,
    help="A combo or strategy: buy it as written, or sell it (the other side of every leg).",
)
@click.option("--quantity", type=Decimal, required=True, help="Contracts (or combos).")
@_common
@pass_app
def options(
    app: AppContext,
    /,
    underlying: str,
    legs: tuple[str, ...],
    strategy: str | None,
    expiry: dt.datetime | None,
    dte: int | None,
    strikes: str | None,
    delta: float | None,
    width: Decimal | None,
    side: str,
    quantity: Decimal,
    **common: Any,
) -> None:
    """An option on UNDERLYING, a combo of legs, or a named strategy.

    \b
    Examples:
      tradepipe order options AAPL --leg "buy C 200 2026-12-18" --quantity 1 \\
          --type limit --limit-price 4.10
      tradepipe order options SPY --leg "buy C 600 2026-12-18" --leg "sell C 610 2026-12-18" \\
          --quantity 2 --type limit --limit-price 3.25
      tradepipe order options SPY --strategy bull_call_spread --dte 30 --strikes 600,610 \\
          --quantity 2 --type limit --limit-price 3.25
      tradepipe order options SPY --strategy iron_condor --dte 30 --delta 0.2 --width 10 \\
          --quantity 1 --dry-run

    A strategy takes --expiry or --dte, and --strikes (ascending) or --delta
    (with --width for the spreads and the condor); the broker's option chain
    chooses its legs and prices it, so the broker is asked even with --dry-run.
    """
    given = dict(expiry=expiry, dte=dte, strikes=strikes, delta=delta, width=width)
    if strategy is not None:
        if legs:
            raise click.UsageError("give --leg or --strategy, not both")
        spec = _strategy_spec(
            strategy, expiry=expiry, dte=dte, strikes=strikes, delta=delta, width=width
        )
        _place(app, dict(symbol=underlying, action=side, quantity=quantity), spec, **common)
        return
    if not legs:
        raise click.UsageError("give --leg (once per leg) or --strategy")
    stray = [f"--{name}" for name, value in given.items() if value is not None]
    if stray:
        need = "needs" if len(stray) == 1 else "need"
        raise click.UsageError(f"{', '.join(stray)} {need} --strategy; a --leg names its own")
    parsed = [_leg(underlying, spec) for spec in legs]
    try:
        fields = option_fields(parsed, side)
    except ValidationError as exc:
        raise click.UsageError(_problems(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc).replace("the quantity", "--quantity")) from None
    _place(app, dict(fields, quantity=quantity), **common)


@order.command("modify")
@click.argument("client_order_id")
@click.option("--quantity", type=Decimal, help="A smaller quantity (never a larger one).")
@click.option("--limit-price", type=Decimal, help="New limit price.")
@click.option("--stop-price", type=Decimal, help="New stop price.")
@click.option("--broker", "broker_name", metavar="NAME", help="Use this broker ([run] broker).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def modify(
    app: AppContext,
    client_order_id: str,
    quantity: Decimal | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    broker_name: str | None,
    as_json: bool,
) -> None:
    """Change a working order's prices, or reduce its quantity.

    A larger quantity is refused: place a new order for the difference, so the
    risk filters judge it.
    """
    if quantity is None and limit_price is None and stop_price is None:
        raise click.UsageError("say what to change: --quantity, --limit-price or --stop-price")
    for name, value in (
        ("quantity", quantity),
        ("limit-price", limit_price),
        ("stop-price", stop_price),
    ):
        if value is not None and value <= 0:
            raise click.UsageError(f"--{name} must be greater than 0")
    if broker_name:
        app.override("run", broker=broker_name)
    app.setup_logging()
    settings = app.settings
    broker = make_component(app.host, settings, "broker", settings.run.broker)
    change = Change(quantity, limit_price, stop_price)
    try:
        connect_broker(broker, settings)
        current = broker.order(client_order_id)
        if current is None:
            raise BrokerRejectedError(
                f"order {client_order_id} is unknown to the broker; nothing to modify"
            )
        # The adapter judges again, knowing the contract (whole option contracts).
        broker.order_rules.require_change(
            client_order_id,
            change,
            order_type=current.order_type,
            status=current.status,
            filled=current.filled_quantity,
            kind=None,
        )
        if quantity is not None and quantity > current.quantity:
            raise BrokerRejectedError(
                f"--quantity {quantity} is more than the order's {current.quantity}; place a new "
                "order for the difference so the risk filters judge it"
            )
        update = broker.modify(
            client_order_id, quantity=quantity, limit_price=limit_price, stop_price=stop_price
        )
    finally:
        broker.disconnect()
    log.info("order %s modified: %s", client_order_id, update.reason)
    if as_json:
        print_json(update.model_dump(mode="json"))
    else:
        console().print(
            table(
                "Order modified",
                ["", ""],
                [
                    ("client order id", Id(client_order_id)),
                    ("status", update.status.value),
                    ("broker order id", as_id(update.broker_order_id)),
                    ("reason", redact_accounts(update.reason)),
                ],
            )
        )


def _leg(underlying: str, spec: str) -> tuple[str, int, Option]:
    parts = spec.split()
    if len(parts) == 4:
        parts.insert(1, "1")
    if len(parts) != 5 or parts[0].lower() not in ("buy", "sell"):
        raise click.UsageError(
            f'cannot read leg {spec!r}; write it as "buy|sell [RATIO] C|P STRIKE YYYY-MM-DD"'
        )
    action, ratio, right, strike, expiry = parts
    try:
        option = Option(underlying=underlying, right=right.upper(), strike=strike, expiry=expiry)
        count = int(ratio)
    except (ValidationError, ValueError) as exc:
        detail = _problems(exc) if isinstance(exc, ValidationError) else str(exc)
        raise click.UsageError(f"leg {spec!r}: {detail}") from None
    if count < 1:
        raise click.UsageError(f"leg {spec!r}: the ratio must be a positive whole number")
    return action.lower(), count, option


def _place(
    app: AppContext,
    fields: dict[str, Any],
    strategy: OptionStrategySpec | None = None,
    *,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    tif: str,
    outside_rth: bool,
    rationale: str,
    what_if: bool,
    dry_run: bool,
    wait: float,
    broker_name: str | None,
    as_json: bool,
) -> None:
    """One order: ``fields`` (symbol, action, quantity …), or ``strategy`` on ``fields``' symbol."""
    if broker_name:
        app.override("run", broker=broker_name)
    app.setup_logging()
    clock = SystemClock()
    terms = dict(
        order_type=order_type.replace("-", "_"),
        limit_price=limit_price,
        stop_price=stop_price,
        tif=tif,
        outside_rth=outside_rth,
        rationale=rationale,
    )
    pending: Decision | dict[str, Any]
    try:
        if strategy is None:
            pending = Decision(
                source="cli", created_at=clock.now(), confidence=100, **terms, **fields
            )
        else:
            pending = strategy_document(
                fields["symbol"],
                strategy,
                side=fields["action"],
                quantity=fields["quantity"],
                terms=terms,
                source="cli",
                created_at=clock.now(),
            )
    except ValidationError as exc:
        raise click.UsageError(_problems(exc)) from None
    except ValueError as exc:
        raise click.UsageError(_option_names(str(exc))) from None
    if isinstance(pending, Decision):
        check_bracket(pending)
        problem = OrderRules.of(app.settings).check_decision(pending, clock.now())
        if problem:
            raise click.UsageError(_option_names(problem))
    outcome: Outcome | RejectedDecision
    if not isinstance(pending, Decision):

        def open_run(dry: bool, at: Clock) -> AbstractContextManager[Direct]:
            return direct_run(app.settings, app.host, source="cli", dry_run=dry, clock=at)

        outcome, ledger = place_strategy(
            open_run, pending, source="cli", dry_run=dry_run, what_if=what_if, wait=wait
        )
    else:
        with direct_run(
            app.settings, app.host, source="cli", dry_run=dry_run or what_if, clock=clock
        ) as run:
            outcome = run.preview(pending) if what_if else run.execute(pending, wait=wait)
            ledger = None if dry_run or what_if else run.pipeline.run.run_id
    # Reported once the run is closed: exiting inside it would mark it failed.
    if isinstance(outcome, RejectedDecision):
        report_rejected(outcome, ledger, as_json, "options order")
    report(outcome, ledger, as_json)


def check_bracket(decision: Decision) -> None:
    """Refuse a bracket whose take-profit is on the wrong side of its stop-loss.

    :raises ConfigError: naming both prices and the side they must be on.
    """
    problem = bracket_problem(
        decision.action, decision.take_profit, decision.stop_loss, ("take-profit", "stop-loss")
    )
    if problem:
        raise ConfigError(problem)


def _problems(exc: ValidationError) -> str:
    """What failed validation, each field called by its option where it has one."""

    def where(loc: tuple[Any, ...]) -> str:
        if not loc:
            return "order"
        return OPTION_NAMES.get(str(loc[0])) or ".".join(str(p) for p in loc)

    return "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))


def _strategy_spec(
    name: str,
    *,
    expiry: dt.datetime | None,
    dte: int | None,
    strikes: str | None,
    delta: float | None,
    width: Decimal | None,
) -> OptionStrategySpec:
    """The strategy ``--strategy`` and its parameters name; a usage error naming the option."""
    if (expiry is None) == (dte is None):
        raise click.UsageError(f"--strategy {name}: give one of --expiry and --dte")
    if (strikes is None) == (delta is None):
        raise click.UsageError(f"--strategy {name}: give one of --strikes and --delta")
    if width is not None and delta is None:
        raise click.UsageError("--width goes with --delta (with --strikes every strike is given)")
    chosen: tuple[Decimal, ...] = ()
    if strikes is not None:
        try:
            chosen = tuple(Decimal(k.strip()) for k in strikes.split(","))
        except InvalidOperation:
            raise click.UsageError(
                f"--strikes: cannot read {strikes!r}; give numbers separated by commas, "
                "e.g. 600,610"
            ) from None
        if len(chosen) != STRATEGY_LEGS[name]:
            raise click.UsageError(
                f"--strikes: a {name} takes {STRATEGY_LEGS[name]} strike(s), got {len(chosen)}"
            )
    try:
        return OptionStrategySpec(
            strategy=name,
            expiry=None if expiry is None else expiry.date(),
            dte=dte,
            strikes=chosen,
            delta=delta,
            width=width,
        )
    except ValidationError as exc:
        raise click.UsageError(
            "; ".join(
                f"--{e['loc'][0] if e['loc'] else 'strategy'}: "
                + e["msg"].removeprefix("Value error, ")
                for e in exc.errors(include_url=False)
            )
        ) from None


def _option_names(message: str) -> str:
    """A document's error message, each part's field called by its option (``--limit-price``)."""
    return "; ".join(
        re.sub(r"^\w+", lambda m: OPTION_NAMES.get(m[0], m[0]), part)
        for part in message.split("; ")
    )
