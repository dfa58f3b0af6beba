"""The REST API's request bodies: the fields of the CLI command each one mirrors.

Every model refuses unknown fields, so a misspelt ``stop_loss`` is a 422
naming it rather than an order without its stop.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from tradepipe.decision_schema import OptionStrategySpec

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit"]
TimeInForce = Literal["day", "gtc"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Manual(_Body):
    """What every manual order has besides its instrument, as ``tradepipe order``'s options."""

    order_type: OrderType = "market"
    limit_price: Decimal | None = Field(default=None, gt=0)
    stop_price: Decimal | None = Field(default=None, gt=0)
    tif: TimeInForce = "day"
    outside_rth: bool = False
    rationale: str = Field(default="manual order from the REST API", max_length=2000)
    dry_run: bool = Field(default=False, description="Judge with the risk filters; send nothing.")
    what_if: bool = Field(default=False, description="Ask the broker for a preview; send nothing.")
    wait: float = Field(default=0.0, ge=0, le=60, description="Seconds to wait for a fill.")


class StockOrder(_Manual):
    """The fields of ``tradepipe order stock``."""

    symbol: str = Field(pattern=r"^[A-Za-z0-9.]{1,12}$", examples=["AAPL"])
    side: Side
    quantity: Decimal = Field(gt=0, le=1_000_000, description="Shares.")
    take_profit: Decimal | None = Field(default=None, gt=0)
    stop_loss: Decimal | None = Field(default=None, gt=0)
    lots: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]] = Field(
        default_factory=list,
        max_length=100,
        description="Tax lots the order closes, relieved first in this order, by the names "
        "`GET /tax/lots` gives (`tradepipe order stock --lot`).",
        examples=[["AAPL/2025-03-10/100@187.50"]],
    )


class OptionLeg(_Body):
    """One option, as ``--leg "buy|sell [RATIO] C|P STRIKE YYYY-MM-DD"``."""

    action: Side
    ratio: int = Field(default=1, ge=1, le=10, description="Contracts per combo.")
    right: Literal["C", "P"]
    strike: Decimal = Field(gt=0, lt=100_000, decimal_places=3)
    expiry: dt.date


class OptionsOrder(_Manual):
    """The fields of ``tradepipe order options``, or a named strategy.

    Give ``legs`` (one option, or a combo of two to four) with exact strikes
    and expiries, as the command does; or ``strategy``, a named options
    strategy as in a decision document, whose legs the broker's option chain
    chooses (nearest strike, expiry, days to expiry or delta).
    """

    underlying: str = Field(pattern=r"^[A-Za-z0-9.]{1,12}$", examples=["AAPL"])
    strategy: OptionStrategySpec | None = Field(
        default=None, description="A named strategy; its legs come from the option chain."
    )
    legs: list[OptionLeg] = Field(default_factory=list, max_length=4, validate_default=True)
    side: Side = Field(
        default="buy",
        description="A combo or strategy: buy it as written, or sell it (the other side of "
        "every leg). A single leg's own action decides.",
    )
    quantity: Decimal = Field(gt=0, le=10_000, description="Contracts (or combos).")

    @field_validator("legs")
    @classmethod
    def _legs_or_strategy(cls, legs: list[OptionLeg], info: ValidationInfo) -> list[OptionLeg]:
        if "strategy" not in info.data:
            return legs  # the strategy is invalid: its own error says why
        strategy = info.data["strategy"]
        if strategy is not None and legs:
            raise ValueError("give legs or strategy, not both")
        if strategy is None and not legs:
            raise ValueError("give at least one leg, or a strategy")
        if len(legs) == 1 and legs[0].ratio != 1:
            raise ValueError("a single-leg order takes its size from quantity, not a ratio")
        return legs


class HaltRequest(_Body):
    reason: str = Field(default="", max_length=500)


# -- answers -----------------------------------------------------------------------------
# They describe the answers in the schema. Keys a library call adds later pass
# through (``extra="allow"``) rather than being dropped. Money and quantities
# are exact decimal strings; times ISO-8601 with an offset.

Money = str | None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(_Answer):
    status: str


class BrokerState(_Answer):
    """The broker's state, and whether the service keeps a connection to it."""

    broker: str
    connected: bool
    authenticated: bool
    account_id: str | None = Field(description="Masked, e.g. ***4567.")
    paper: bool
    message: str
    ready: bool = Field(description="Connected and logged in: orders and reads can go ahead.")
    problem: str | None = Field(description="Why it is not ready, and what to do.")
    held: bool = Field(description="The service keeps this connection (POST /broker/connect).")


class Released(_Answer):
    held: bool
    released: bool = Field(description="Whether a kept connection was released.")


class AccountSummary(_Answer):
    account_id: str | None
    currency: str
    cash: Money
    equity: Money
    buying_power: Money
    gross_position_value: Money
    realized_pnl: Money
    unrealized_pnl: Money
    ts: str


class Account(_Answer):
    broker: str
    paper: bool
    summary: AccountSummary


class Position(_Answer):
    symbol: str
    quantity: Money
    avg_cost: Money
    mark_price: Money
    market_value: Money
    unrealized_pnl: Money
    realized_pnl: Money


class WorkingOrder(_Answer):
    """An open order as the broker reports it."""

    client_order_id: str | None
    broker_order_id: str
    symbol: str
    side: str
    quantity: Money
    filled_quantity: Money
    status: str
    order_type: str
    limit_price: Money = None
    stop_price: Money = None


class PlacedOrder(_Answer):
    client_order_id: str
    status: str
    broker_order_id: str | None
    reason: str
    intent: dict[str, Any] = Field(description="What was (or would be) sent.")
    filled_quantity: Money


class OrderOutcome(_Answer):
    """What became of one decision: the verdicts, the order, its events and fills."""

    decision: dict[str, Any]
    verdicts: list[dict[str, Any]] = Field(description="One per risk filter, in order.")
    order: PlacedOrder | None
    events: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    preview: dict[str, Any] | None = Field(description="The broker's what-if answer.")
    sent: bool
    run_id: str | None = Field(description="The ledger run; null when dry.")
    ok: bool = Field(description="False when the risk filters denied it or the broker refused.")


class CancelRequested(_Answer):
    client_order_id: str
    broker: str
    status: str
    final: bool = Field(description="The broker confirmed: the order will not fill now.")
    reason: str
    ledger_run: str | None = Field(
        default=None, description="The reconciliation run that recorded the order's end."
    )


class LedgerOrders(_Answer):
    run_id: str
    orders: list[dict[str, Any]]


class LedgerFills(_Answer):
    run_id: str
    fills: list[dict[str, Any]]


class LedgerDecisions(_Answer):
    run_id: str
    decisions: list[dict[str, Any]]


class ManualHalt(_Answer):
    reason: str
    at: str | None


class DailyHalt(_Answer):
    day: str
    start_equity: Money
    at: str | None
    loss: Money
    limit: Money


class HaltState(_Answer):
    """The kill switch."""

    halted: bool
    manual: ManualHalt | None = Field(description="Set by POST /halt until POST /resume.")
    daily: DailyHalt | None = Field(description="max_daily_loss's halt, for its day only.")


class LiveStatus(_Answer):
    """A live run's status file, with whether the run that wrote it is still up.

    The keys the run writes (``run_id``, ``market``, ``feed``, ``counts``,
    ``open_orders``, ``pnl_today``, ``halt`` …) pass through as written; see
    ``tradepipe status --json``.
    """

    liveness: Literal["running", "stale", "dead", "ended", "none", "unknown"] = Field(
        description="running: up and writing; stale: alive but silent; dead: gone without "
        "closing; ended: closed; none: no live run has written the file."
    )
    running: bool
    summary: str
    status_file: str
    state: str | None = None
    run_id: str | None = None
    updated_at: str | None = None
    age_seconds: float | None = None


class Halted(_Answer):
    halted: bool
    reason: str
    at: str


class Resumed(_Answer):
    halted: bool
    was_halted: bool


class EquityPoint(_Answer):
    ts: str
    equity: Money
    cash: Money
    run_id: str


class EquityCurve(_Answer):
    account: str | None = Field(
        default=None, description="The account covered (`tradepipe ledger accounts`)."
    )
    account_label: str | None = None
    currency: str | None
    points: list[EquityPoint] = Field(description="Oldest first.")


class TaxLots(_Answer):
    account: str | None = Field(
        default=None, description="The account covered (`tradepipe ledger accounts`)."
    )
    account_label: str | None = None
    method: str
    open: list[dict[str, Any]] | None = Field(default=None, description="Absent with only=closed.")
    closed: list[dict[str, Any]] | None = Field(default=None, description="Absent with only=open.")
    notes: list[str] = Field(
        default_factory=list,
        description="Each sale whose named lots were not open then (relieved by the method).",
    )


class TermTotals(_Answer):
    proceeds: str
    cost_basis: str
    adjustment_amount: str
    gain_or_loss: str


class TaxReport(_Answer):
    account: str | None = Field(
        default=None, description="The account covered (`tradepipe ledger accounts`)."
    )
    account_label: str | None = None
    year: int | None = Field(description="The tax year; null: every year's sales.")
    period: str = Field(description="The year, or `all years` (not one tax year's form).")
    method: str
    combined: bool = Field(description="One row per sale (date acquired VARIOUS if mixed).")
    rows: list[dict[str, str]] = Field(description="Form 8949 rows, short-term first.")
    box_totals: dict[str, TermTotals] = Field(description="By box (A-F) that has rows.")
    totals: dict[str, TermTotals] = Field(description="By term: short, long.")
    notes: list[str] = Field(
        default_factory=list,
        description="Each sale whose named lots were not open then (relieved by the method).",
    )


class Snapshots(_Answer):
    directory: str
    files: dict[str, dict[str, Any] | None] = Field(description="By file name; null: missing.")
