"""``tradepipe order stock|options …``: one manual order through the whole pipeline.

The order is a decision like any strategy's (source ``cli``, confidence 100):
sized (the quantity given), judged by every configured risk filter, made
durable in the ledger, sent to the configured broker, and recorded with its
verdicts and status. ``--dry-run`` judges without sending or writing;
``--what-if`` also asks the broker for its preview (commission, margin, the
position after). A live account is refused unless ``[run] allow_live``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import click
from pydantic import ValidationError
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.outcome import report
from tradepipe.cli.output import console, print_json, table
from tradepipe.clock import SystemClock
from tradepipe.decisions import Decision
from tradepipe.direct import direct_run
from tradepipe.errors import BrokerRejectedError, ConfigError
from tradepipe.instruments import Combo, Leg, Option
from tradepipe.logs import redact_accounts
from tradepipe.pipeline import connect_broker, make_component

log = logging.getLogger(__name__)
ORDER_TYPES = ("market", "limit", "stop", "stop-limit")


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
    **common: Any,
) -> None:
    """Buy or sell SYMBOL's stock."""
    _place(
        app,
        dict(
            symbol=symbol,
            action=side,
            quantity=quantity,
            take_profit=take_profit,
            stop_loss=stop_loss,
        ),
        **common,
    )


@order.command("options")
@click.argument("underlying")
@click.option(
    "--leg",
    "legs",
    multiple=True,
    required=True,
    metavar="SPEC",
    help='One leg: "buy|sell [RATIO] C|P STRIKE YYYY-MM-DD"; repeat for a combo.',
)
@click.option(
    "--side",
    type=click.Choice(["buy", "sell"]),
    default="buy",
    show_default=True,
    help="For a combo: buy it as written, or sell it (take the other side of every leg).",
)
@click.option("--quantity", type=Decimal, required=True, help="Contracts (or combos).")
@_common
@pass_app
def options(
    app: AppContext,
    /,
    underlying: str,
    legs: tuple[str, ...],
    side: str,
    quantity: Decimal,
    **common: Any,
) -> None:
    """An option on UNDERLYING, or a combo of legs (vertical, straddle, iron condor …).

    \b
    Examples:
      tradepipe order options AAPL --leg "buy C 200 2026-12-18" --quantity 1 \\
          --type limit --limit-price 4.10
      tradepipe order options SPY --leg "buy C 600 2026-12-18" --leg "sell C 610 2026-12-18" \\
          --quantity 2 --type limit --limit-price 3.25
    """
    parsed = [_leg(underlying, spec) for spec in legs]
    try:
        fields = option_fields(parsed, side)
    except ValidationError as exc:
        raise click.UsageError(_problems(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc).replace("the quantity", "--quantity")) from None
    _place(app, dict(fields, quantity=quantity), **common)


def option_fields(legs: Sequence[tuple[str, int, Option]], side: str) -> dict[str, Any]:
    """The decision fields of an options order: ``symbol``, ``instrument``, ``action``.

    :param legs: ``(buy|sell, ratio, option)`` each. One leg trades that option
        on its own side; several make a combo (ratios signed by their side).
    :param side: a combo's side: ``buy`` it as written, or ``sell`` it.
    :raises ValueError: a single leg with a ratio other than 1.
    :raises ValidationError: legs that make no combo (one option twice …).
    """
    if len(legs) == 1:
        action, ratio, option = legs[0]
        if ratio != 1:
            raise ValueError("a single-leg order takes its size from the quantity, not a ratio")
        return dict(symbol=option.ticker, instrument=option, action=action)
    combo = Combo(legs=tuple(Leg(instrument=o, ratio=r if a == "buy" else -r) for a, r, o in legs))
    return dict(symbol=combo.ticker, instrument=combo, action=side)


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
    try:
        connect_broker(broker, settings)
        current = broker.order(client_order_id)
        if current is None or not current.status.is_working:
            state = "unknown to the broker" if current is None else current.status.value
            raise BrokerRejectedError(f"order {client_order_id} is {state}; nothing to modify")
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
                    ("client order id", client_order_id),
                    ("status", update.status.value),
                    ("broker order id", update.broker_order_id),
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
    if broker_name:
        app.override("run", broker=broker_name)
    app.setup_logging()
    clock = SystemClock()
    try:
        decision = Decision(
            source="cli",
            created_at=clock.now(),
            confidence=100,
            order_type=order_type.replace("-", "_"),
            limit_price=limit_price,
            stop_price=stop_price,
            tif=tif,
            outside_rth=outside_rth,
            rationale=rationale,
            **fields,
        )
    except ValidationError as exc:
        raise click.UsageError(_problems(exc)) from None
    check_bracket(decision)
    with direct_run(
        app.settings, app.host, source="cli", dry_run=dry_run or what_if, clock=clock
    ) as run:
        outcome = run.preview(decision) if what_if else run.execute(decision, wait=wait)
        ledger = None if dry_run or what_if else run.pipeline.run.run_id
    report(outcome, ledger, as_json)


def check_bracket(decision: Decision) -> None:
    """Refuse a bracket whose take-profit is on the wrong side of its stop-loss.

    :raises ConfigError: naming both prices and the side they must be on.
    """
    tp, sl = decision.take_profit, decision.stop_loss
    if tp is None or sl is None:
        return
    buying = decision.action.value == "buy"
    if (buying and not sl < tp) or (not buying and not tp < sl):
        raise ConfigError(
            f"a {'buy' if buying else 'sell'}'s take-profit ({tp}) must be "
            f"{'above' if buying else 'below'} its stop-loss ({sl})"
        )


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'order'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )
