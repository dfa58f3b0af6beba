"""The external form of a decision: JSON made by another program or an AI model.

:class:`DecisionDocument` is a versioned contract (``schema_version`` 1) for
decisions that arrive from outside — files, stdin, an LLM's answer,
``tradepipe execute``. It is kept apart from :class:`~tradepipe.Decision` on
purpose: the document is a published format that must not change when the
internal model does. :func:`read_decision` turns one JSON value into a
:class:`~tradepipe.Decision`, or into a :class:`~tradepipe.RejectedDecision`
whose message names the offending field; nothing invalid is ever executed.

An options strategy (``options``) is resolved while converting: its legs are
chosen from the broker's chain when the reader has one (``chain``), and the
decision then trades the option or combo (``instrument``, ``symbol`` its
ticker) with its risk figures (``option_risk``); see
:mod:`tradepipe.options.strategies`.

Ids: a document's ``id`` is kept; without one, an id is derived from its
content (:func:`content_id`), so the same document always gets the same id and,
with a fixed ``[run] session``, the same client order id — which is what makes a
decision read twice (a restart) execute once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from tradepipe.decisions import (
    Action,
    Decision,
    LotName,
    OrderType,
    Price,
    Quantity,
    RejectedDecision,
    SizingHints,
    TimeInForce,
    bracket_problem,
)
from tradepipe.errors import BrokerError
from tradepipe.instruments import Symbol, ticker_of
from tradepipe.options.chain import ChainSource
from tradepipe.options.strategies import build

#: The version of the document format this tradepipe reads.
SCHEMA_VERSION = 1

OptionStrategyName = Literal[
    "long_call",
    "long_put",
    "covered_call",
    "cash_secured_put",
    "bull_call_spread",
    "bear_call_spread",
    "bull_put_spread",
    "bear_put_spread",
    "straddle",
    "strangle",
    "iron_condor",
]
#: How many option legs each named strategy has (a covered call's stock is held).
STRATEGY_LEGS: dict[str, int] = {
    "long_call": 1,
    "long_put": 1,
    "covered_call": 1,
    "cash_secured_put": 1,
    "bull_call_spread": 2,
    "bear_call_spread": 2,
    "bull_put_spread": 2,
    "bear_put_spread": 2,
    "straddle": 2,
    "strangle": 2,
    "iron_condor": 4,
}

DecisionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$")]
Dte = Annotated[int, Field(ge=0, le=1500)]


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptionLegSpec(_Document):
    """One leg of an options strategy: which option, chosen by strike or by delta.

    :param expiry: the expiry date, or ``dte``: days to expiry (the nearest listed).
    :param strike: the strike, or ``delta``: the option whose delta is nearest.
    """

    action: Literal["buy", "sell"]
    right: Literal["C", "P"]
    ratio: int = Field(default=1, ge=1, le=10)
    expiry: dt.date | None = None
    dte: Dte | None = None
    strike: Decimal | None = Field(default=None, gt=0)
    delta: float | None = Field(default=None, gt=-1, lt=1)

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        if (self.expiry is None) == (self.dte is None):
            raise ValueError("give one of expiry and dte")
        if (self.strike is None) == (self.delta is None):
            raise ValueError("give one of strike and delta")
        return self


class OptionStrategySpec(_Document):
    """A named options strategy, by explicit legs or by parameters.

    With ``legs``, their number must match the strategy. Without, ``expiry``
    (or ``dte``) and ``strikes`` (or ``delta``, with ``width`` for spreads)
    describe it and the broker's option chain picks the contracts.
    """

    strategy: OptionStrategyName
    legs: tuple[OptionLegSpec, ...] = Field(default=(), max_length=4)
    expiry: dt.date | None = None
    dte: Dte | None = None
    strikes: tuple[Annotated[Decimal, Field(gt=0)], ...] = Field(default=(), max_length=4)
    delta: float | None = Field(default=None, gt=0, lt=1)
    width: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _legs_or_parameters(self) -> Self:
        wanted = STRATEGY_LEGS[self.strategy]
        parameters = (self.expiry, self.dte, self.delta, self.width)
        if self.legs:
            if len(self.legs) != wanted:
                raise ValueError(f"a {self.strategy} has {wanted} leg(s), got {len(self.legs)}")
            if self.strikes or any(p is not None for p in parameters):
                raise ValueError("give legs or parameters (expiry, strikes, delta …), not both")
            return self
        if (self.expiry is None) == (self.dte is None):
            raise ValueError("without legs, give one of expiry and dte")
        if not self.strikes and self.delta is None:
            raise ValueError("without legs, give strikes or delta")
        if self.strikes and len(self.strikes) != wanted:
            raise ValueError(f"a {self.strategy} needs {wanted} strike(s), got {len(self.strikes)}")
        return self


class DecisionDocument(_Document):
    """A decision as JSON, version 1.

    Every field but ``symbol``, ``action`` and ``confidence`` is optional.
    Unknown fields are refused, so a misspelt ``stop_loss`` cannot be lost.

    :param schema_version: 1; a document of another version is refused.
    :param id: stable id; derived from the content when absent. Two documents
        with one id are one decision: the second is refused as a duplicate.
    :param source: the model or system that made it; the reading component's
        name when absent.
    :param quantity: exact size; or ``sizing`` hints, not both.
    :param options: an options strategy on ``symbol``: ``buy`` opens it as
        named, ``sell`` takes its other side; it needs a ``quantity`` (contracts
        or combos) and a market or limit order (``limit_price`` per share:
        the debit, or for a credit strategy the credit).
    :param inputs_hash: a hash of what the decision was made from.
    """

    schema_version: Literal[1] = 1
    id: DecisionId | None = None
    source: str | None = Field(default=None, min_length=1, max_length=128)
    created_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    symbol: Symbol
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
    options: OptionStrategySpec | None = None
    rationale: str = Field(default="", max_length=4000)
    inputs_hash: str | None = Field(default=None, max_length=128)
    lots: tuple[LotName, ...] = Field(
        default=(),
        max_length=100,
        description="Tax lots a sale relieves first, in order (`tradepipe tax lots --open`).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.quantity is not None and self.sizing is not None:
            raise ValueError("give quantity or sizing, not both")
        problem = bracket_problem(self.action, self.take_profit, self.stop_loss)
        if problem:
            raise ValueError(problem)
        return self

    def to_decision(
        self,
        source: str,
        *,
        raw: str | None = None,
        chain: ChainSource | None = None,
        today: dt.date | None = None,
        underlying_price: Decimal | None = None,
    ) -> Decision:
        """The :class:`~tradepipe.Decision` this document asks for.

        :param source: the reading component's name, used when the document
            names no source.
        :param chain: the broker's option chain, to choose an options
            strategy's legs (by nearest strike, expiry, DTE or delta); without
            it, strikes and expiries must be given exactly.
        :param today: the date a ``dte`` counts from when the document has no
            ``created_at`` (default: today, UTC).
        :param underlying_price: the stock's price, for a covered call's risk.
        :raises ValueError: an options strategy that cannot be built, naming the field.
        :raises ValidationError: a rule across fields (a limit order without
            its limit price, ``expires_at`` before ``created_at`` …).
        """
        fields = {
            name: getattr(self, name)
            for name in self.model_fields_set
            if name not in ("schema_version", "options", "id", "source")
        }
        if self.options is not None:
            fields.update(self._strategy(chain, today, underlying_price))
        return Decision(
            id=self.id or "",
            source=self.source or source,
            raw=raw,
            **fields,
        )

    def check_options(self) -> None:
        """Check what an options strategy asks of the rest of the document, without a chain.

        :raises ValueError: naming the field (a ``close``, no ``quantity``, a
            stop, an order type other than market or limit).
        """
        if self.options is None:
            return
        if self.action is Action.CLOSE:
            raise ValueError(
                "action: close is not supported with an options strategy; "
                "sell the strategy to take its other side"
            )
        if self.quantity is None:
            raise ValueError("quantity: an options strategy needs a quantity (contracts or combos)")
        for name in ("stop_loss", "take_profit", "stop_price"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: not supported with an options strategy")
        if self.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError("order_type: an options strategy is sent as a market or limit order")

    def _strategy(
        self, chain: ChainSource | None, today: dt.date | None, underlying_price: Decimal | None
    ) -> dict[str, Any]:
        """The decision fields an options strategy sets: instrument, symbol, side, risk."""
        spec = self.options
        assert spec is not None
        self.check_options()
        assert self.quantity is not None  # checked
        if today is None:
            today = (self.created_at or dt.datetime.now(dt.UTC)).date()
        elif self.created_at is not None:
            today = self.created_at.date()
        strategy = build(
            spec,
            self.symbol,
            chain=chain,
            today=today,
            reverse=self.action is Action.SELL,
            quantity=self.quantity,
            limit_price=self.limit_price,
            underlying_price=underlying_price,
        )
        action = self.action
        if action is not Action.HOLD:
            action = Action.BUY if strategy.side == "buy" else Action.SELL
        return {
            "symbol": ticker_of(strategy.instrument),
            "instrument": strategy.instrument,
            "action": action,
            "option_risk": strategy.risk,
        }


def content_id(raw: Any) -> str:
    """A stable id from a document's content: key order and layout do not matter."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "c-" + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def loads(text: str) -> Any:
    """Parse JSON with exact decimals (a price of 150.1 stays 150.1)."""
    return json.loads(text, parse_float=Decimal)


def read_decision(
    raw: Any,
    source: str,
    *,
    keep_raw: str | None = None,
    chain: ChainSource | None = None,
    today: dt.date | None = None,
    underlying_price: Decimal | None = None,
) -> Decision | RejectedDecision:
    """Turn one parsed JSON value into a decision, or say why it is not one.

    :param raw: the parsed JSON (see :func:`loads`).
    :param source: the reading component's name (the decision's ``source``
        unless the document names one).
    :param keep_raw: text to keep with the decision for the audit (an LLM's answer).
    :param chain: the broker's option chain (see :meth:`DecisionDocument.to_decision`).
    """
    document = read_document(raw)
    if isinstance(document, RejectedDecision):
        return document
    try:
        return document.to_decision(
            source, raw=keep_raw, chain=chain, today=today, underlying_price=underlying_price
        )
    except ValidationError as exc:
        return RejectedDecision(raw, problems(exc))
    except ValueError as exc:
        return RejectedDecision(raw, str(exc))
    except BrokerError as exc:
        # The chain could not be read: nothing can be chosen, nothing is sent.
        return RejectedDecision(raw, f"options: the broker's option chain: {exc}")


def read_document(raw: Any) -> DecisionDocument | RejectedDecision:
    """Validate one parsed JSON value as a document, its id filled in; or say why it is not one.

    Only the document is checked: what depends on an options strategy's legs
    (the broker's chain) is checked when it is converted (:func:`read_decision`).
    """
    if not isinstance(raw, dict):
        return RejectedDecision(raw, f"expected a JSON object, got {_json_type(raw)}")
    try:
        document = DecisionDocument.model_validate(raw)
        document.check_options()
    except ValidationError as exc:
        return RejectedDecision(raw, problems(exc))
    except ValueError as exc:
        return RejectedDecision(raw, str(exc))
    if document.id is None:
        document = document.model_copy(update={"id": content_id(raw)})
    return document


def problems(exc: ValidationError) -> str:
    """A validation error as ``field: what is wrong`` parts, one per problem."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _json_type(value: Any) -> str:
    names: dict[type[object], str] = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), "a number")
