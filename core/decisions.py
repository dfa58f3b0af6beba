"""Decisions: what a decision source wants done.

A :class:`Decision` is the only thing a strategy or an AI model produces. It says
what to trade and how sure the source is; sizing turns it into an order
quantity and the risk filters decide whether it may reach the broker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, Field, ValidationError, ValidationInfo, model_validator
from tradepipe.instruments import Instrument, Symbol
from tradepipe.options.risk import OptionRisk
from tradepipe.order_rules import price_problem
from tradepipe.record import Record


class Action(StrEnum):
    """What the source wants: open or add (buy/sell), flatten (close), or nothing (hold)."""

    BUY = "buy"
    SELL = "sell"
    CLOSE = "close"
    HOLD = "hold"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"


#: The longest ``raw`` text a decision keeps; sources cut longer text to this.
RAW_MAX = 20_000

Price = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=8)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=8)]
#: A tax lot as a decision names it (``AAPL/2025-03-10/100@187.50``, or a lot id).
LotName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]


class SizingHints(Record):
    """What a source may say about size when it does not give a quantity.

    :param risk_fraction: fraction of equity to risk on this trade (0-1].
    :param stop_distance: price distance to the protective stop, per unit.
    :param notional: money to commit, in the account currency.
    """

    risk_fraction: Annotated[Decimal, Field(gt=0, le=1)] | None = None
    stop_distance: Price | None = None
    notional: Price | None = None


#: Validation context: ``created_at`` is the time the decision was handled.
_HANDLED_AT = "created_at_handled"


class Decision(Record):
    """A request from a decision source.

    :param id: stable id; derived from source, symbol, time and action when empty,
        so the same decision always yields the same client order id.
    :param source: the strategy or model that made the decision.
    :param created_at: when it was made (timezone-aware).
    :param expires_at: after this it must not be acted on.
    :param confidence: 0-100; the minimum-confidence filter reads it.
    :param quantity: exact quantity; when absent, sizing decides from ``sizing``.
    :param stop_loss: protective stop price; also gives sizing its risk distance.
    :param inputs_hash: a hash of what the source decided on (an LLM's prompt).
    :param raw: the text the decision was read from, when the source keeps it
        for the audit (an LLM's answer); it plays no part in execution.
    :param option_risk: an options strategy's max loss, max gain and
        breakevens for ``quantity`` (see :mod:`tradepipe.options.strategies`).
    :param lots: the tax lots a sale (or a buy to cover) relieves first, in
        this order, by the names ``tradepipe tax lots --open`` shows; the rest
        of the quantity is relieved by the method the lots are read with
        (``--method``, first in, first out by default).
    """

    id: str = Field(default="", max_length=128)
    source: str = Field(default="", max_length=128)
    created_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    symbol: Symbol
    instrument: Instrument | None = None
    action: Action
    confidence: float = Field(ge=0, le=100)
    quantity: Quantity | None = None
    sizing: SizingHints | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: Price | None = None
    stop_price: Price | None = None
    tif: TimeInForce = TimeInForce.DAY
    outside_rth: bool = False
    stop_loss: Price | None = None
    take_profit: Price | None = None
    rationale: str = Field(default="", max_length=4000)
    inputs_hash: str | None = Field(default=None, max_length=128)
    raw: str | None = Field(default=None, max_length=RAW_MAX)
    option_risk: OptionRisk | None = None
    lots: tuple[LotName, ...] = Field(default=(), max_length=100)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Self:
        problem = price_problem(self.order_type, self.limit_price, self.stop_price)
        if problem:
            raise ValueError(problem)
        if self.lots and self.action is Action.HOLD:
            raise ValueError("lots name the tax lots a trade closes; a hold trades nothing")
        if (
            self.expires_at
            and self.created_at
            and self.expires_at <= self.created_at
            # A creation time the source gave: one filled in when the decision is
            # handled only says it expired before it arrived (it is denied so).
            and not (info.context and info.context.get(_HANDLED_AT))
        ):
            raise ValueError("expires_at must be after created_at")
        if not self.id and self.source and self.created_at is not None:
            object.__setattr__(self, "id", decision_id(self))
        return self

    def with_origin(self, source: str, created_at: Any) -> Decision:
        """Return this decision with ``source``/``created_at`` filled where missing."""
        # Field values, not a dump: a nested model dumped with exclude_unset
        # loses its defaulted discriminator (``kind``) and cannot be re-read.
        data = {name: getattr(self, name) for name in self.model_fields_set}
        if not data.get("source"):
            data["source"] = source
        if data.get("created_at") is None:
            data["created_at"] = created_at
            return Decision.model_validate(data, context={_HANDLED_AT: True})
        return Decision.model_validate(data)


@dataclass(frozen=True, slots=True)
class RejectedDecision:
    """What a source read but could not turn into a decision.

    A strategy may return (or yield) it among its decisions: the executor
    records it as rejected, with ``error``, and nothing is sized or sent.

    :param raw: what was read (a JSON object, or the text when it was not JSON).
    :param error: why it is not a decision, naming the offending field.
    """

    raw: Any
    error: str


def validation_problems(exc: ValidationError) -> str:
    """What failed validation, as ``field: message`` parts (``decision:`` when no field)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


def bracket_problem(
    action: Action,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    names: tuple[str, str] = ("take_profit", "stop_loss"),
) -> str:
    """Why a bracket's exits are the wrong way round ("" when they are not).

    A buy's take-profit must be above its stop-loss, a sell's below; ``names``
    are what the person called the two prices (fields, or options).
    """
    if take_profit is None or stop_loss is None or action not in (Action.BUY, Action.SELL):
        return ""
    buying = action is Action.BUY
    if (buying and stop_loss < take_profit) or (not buying and take_profit < stop_loss):
        return ""
    return (
        f"a {action.value}'s {names[0]} ({take_profit}) must be "
        f"{'above' if buying else 'below'} its {names[1]} ({stop_loss})"
    )


def decision_id(decision: Decision) -> str:
    """Derive a stable id from what makes a decision unique.

    The instant is taken as a POSIX timestamp, so the same moment written in
    two timezones gives one id; the free-text source is length-prefixed so no
    choice of characters can make two different decisions' keys equal.
    """
    assert decision.created_at is not None
    source = decision.source
    key = (
        f"{len(source)}:{source}|{decision.symbol}|{decision.created_at.timestamp()!r}|"
        f"{decision.action}|{decision.quantity}|{decision.order_type}|"
        f"{decision.limit_price}|{decision.stop_price}"
    )
    return "d-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
