"""Risk filters on the portfolio, the order flow and the order itself.

``max_exposure`` (gross and per group), ``max_orders_per_minute``,
``max_open_orders``, ``symbol_lists``, ``price_band`` (fat-finger guard),
``stale_decision`` and ``live_account``. Each is a small class with its own
``[risk.<name>]`` table, answering with the figures it used.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator
from tradepipe import (
    Check,
    ComponentSettings,
    Decision,
    OrderIntent,
    RiskContext,
    RiskFilter,
    hookimpl,
)
from tradepipe.decisions import OrderType
from tradepipe.instruments import Combo, Option, Stock
from tradepipe.money import ZERO, cents
from tradepipe.plugins.risk.filters import floor_units, order_price, reduces_only, signed

# An OCC option symbol: root padded to six, YYMMDD, right, strike in thousandths.
_OCC = re.compile(r"^(.{6})\d{6}[CP]\d{8}$")


def underlying_of(symbol: str) -> str:
    """The underlying a position's symbol trades: the stock itself, an option's root,
    a combo's first underlying (its key is ``ROOT Xhash``)."""
    match = _OCC.match(symbol)
    if match:
        return match.group(1).strip()
    return symbol.split(" ", 1)[0].split("+", 1)[0]


def underlyings(intent: OrderIntent) -> list[str]:
    """Every underlying the order trades (one for stocks and single options)."""
    inst = intent.instrument
    if isinstance(inst, Option):
        return [inst.underlying]
    if isinstance(inst, Combo):
        names: list[str] = []
        for leg in inst.legs:
            leg_inst = leg.instrument
            name = leg_inst.underlying if isinstance(leg_inst, Option) else leg_inst.symbol
            if name not in names:
                names.append(name)
        return names
    if isinstance(inst, Stock):
        return [inst.symbol]
    return [intent.symbol]


def room(position: Decimal, intent: OrderIntent, allowed_abs: Decimal) -> Decimal:
    """The largest quantity of ``intent`` that leaves ``|position after| <= allowed_abs``."""
    if allowed_abs < 0:
        return ZERO
    if position != 0 and (position > 0) != (intent.side == "buy"):
        return abs(position) + allowed_abs  # close, then open up to the allowance
    return allowed_abs - abs(position)


class MaxExposure(RiskFilter):
    """Cap gross exposure across every symbol, and per sector or asset class."""

    name = "max_exposure"
    description = "cap gross portfolio exposure (and per group); reduce orders that exceed it"

    class Settings(ComponentSettings):
        #: Gross exposure cap: the sum of |position + pending| x price x multiplier.
        limit: Decimal | None = Field(default=Decimal(100_000), gt=0)
        #: Underlying symbol -> group (sector, asset class); unlisted symbols have none.
        groups: dict[str, str] = Field(default_factory=dict)
        #: Group -> exposure cap for the symbols in it.
        group_limits: dict[str, Decimal] = Field(default_factory=dict)

        @field_validator("groups")
        @classmethod
        def _upper(cls, groups: dict[str, str]) -> dict[str, str]:
            return {k.strip().upper(): v for k, v in groups.items()}

        @field_validator("group_limits")
        @classmethod
        def _positive(cls, limits: dict[str, Decimal]) -> dict[str, Decimal]:
            for group, cap in limits.items():
                if cap <= 0:
                    raise ValueError(f"group_limits.{group} must be greater than 0")
            return limits

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        symbol = intent.symbol
        position = ctx.exposure(symbol)
        if reduces_only(intent, position):
            return self.allow("reduces the position", position=position)
        price = order_price(intent, ctx)
        if price is None:
            return self.deny(f"no price known for {symbol} to value the exposure")
        group = self.settings.groups.get(underlyings(intent)[0])
        held = self._other_exposure(ctx, symbol, group)
        if isinstance(held, str):
            return self.deny(held)
        gross, in_group = held
        unit = price * intent.multiplier
        own_after = abs(position + signed(intent)) * unit
        figures: dict[str, Any] = {"price": price, "position": position}
        allowed = intent.quantity
        reasons: list[str] = []
        caps: list[tuple[str, Decimal, Decimal]] = []
        if self.settings.limit is not None:
            caps.append(("gross", gross, self.settings.limit))
        group_limit = self.settings.group_limits.get(group) if group is not None else None
        if group is not None and group_limit is not None:
            figures["group"] = group
            caps.append((f"group {group}", in_group, group_limit))
        for label, others, cap in caps:
            key = "gross" if label == "gross" else "group"
            figures[f"{key}_after"] = cents(others + own_after)
            figures[f"{key}_limit"] = cap
            if others + own_after <= cap:
                continue
            fits = floor_units(room(position, intent, (cap - others) / unit), intent.quantity)
            allowed = min(allowed, fits)
            reasons.append(f"{label} exposure {cents(others + own_after)} over {cap}")
        if not reasons:
            return self.allow(**figures)
        if allowed <= 0:
            return self.deny("; ".join(reasons) + ", and no smaller order fits", **figures)
        return self.reduce(allowed, f"reduced to {allowed}: " + "; ".join(reasons), **figures)

    def _other_exposure(
        self, ctx: RiskContext, symbol: str, group: str | None
    ) -> tuple[Decimal, Decimal] | str:
        """The gross value held in every other symbol, and in those of ``group``;
        or why it cannot be valued (unvalued exposure must not count as none)."""
        groups = self.settings.groups
        gross = in_group = ZERO
        for other, multiplier in ctx.symbols().items():
            if other == symbol:
                continue
            quantity = ctx.exposure(other)
            if not quantity:
                continue
            mark = ctx.last_price(other)
            if mark is None:
                return f"no price known for {other} to value the exposure"
            value = abs(quantity) * mark * multiplier
            gross += value
            if group is not None and groups.get(underlying_of(other)) == group:
                in_group += value
        return gross, in_group


class MaxOrdersPerMinute(RiskFilter):
    """Cap how many orders pass in any rolling window.

    Counts the orders this filter let through in this process; put it last in
    ``[run] risk_filters`` so that it counts exactly the orders sent (earlier it
    also counts orders a later filter denies, which only makes it stricter).
    """

    name = "max_orders_per_minute"
    description = "cap the orders passed in any rolling minute"

    class Settings(ComponentSettings):
        limit: int = Field(default=10, ge=1)
        #: The window's length in seconds.
        window_seconds: float = Field(default=60, gt=0)

    settings: Settings

    def __init__(self, settings: ComponentSettings | None = None) -> None:
        super().__init__(settings)
        self._passed: deque[datetime] = deque()

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        now = ctx.now()
        start = now - timedelta(seconds=self.settings.window_seconds)
        passed = self._passed
        while passed and passed[0] <= start:
            passed.popleft()
        figures: dict[str, Any] = {
            "orders_in_window": len(passed),
            "limit": self.settings.limit,
            "window_seconds": self.settings.window_seconds,
        }
        if len(passed) >= self.settings.limit:
            return self.deny(
                f"{len(passed)} orders in the last {self.settings.window_seconds:g}s "
                f"(limit {self.settings.limit})",
                **figures,
            )
        passed.append(now)
        return self.allow(**figures)


class MaxOpenOrders(RiskFilter):
    """Cap how many orders may be working at the broker at once."""

    name = "max_open_orders"
    description = "cap the orders working at the broker at once"

    class Settings(ComponentSettings):
        limit: int = Field(default=20, ge=1)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        working = ctx.open_orders()
        limit = self.settings.limit
        if working >= limit:
            return self.deny(
                f"{working} orders already working (limit {limit})",
                open_orders=working,
                limit=limit,
            )
        return self.allow(open_orders=working, limit=limit)


class SymbolLists(RiskFilter):
    """Trade only allowed symbols; never denied ones (options by their underlying)."""

    name = "symbol_lists"
    description = "allow list and deny list of symbols (options by underlying)"

    class Settings(ComponentSettings):
        #: Only these may be traded; empty allows every symbol not denied.
        allow: list[str] = Field(default_factory=list)
        deny: list[str] = Field(default_factory=list)

        @field_validator("allow", "deny")
        @classmethod
        def _upper(cls, names: list[str]) -> list[str]:
            return [n.strip().upper() for n in names]

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        names = underlyings(intent)
        denied = [n for n in names if n in self.settings.deny]
        if denied:
            return self.deny(f"{', '.join(denied)} on the deny list", symbols=names)
        allow = self.settings.allow
        if allow:
            missing = [n for n in names if n not in allow]
            if missing:
                return self.deny(f"{', '.join(missing)} not on the allow list", symbols=names)
        return self.allow(symbols=names)


class PriceBand(RiskFilter):
    """Fat-finger guard: limit and stop prices within a band around the last price."""

    name = "price_band"
    description = "limit/stop prices within max_deviation_pct of the last price"

    class Settings(ComponentSettings):
        #: Largest distance from the last price, in percent.
        max_deviation_pct: Decimal = Field(default=Decimal(5), gt=0)
        #: Deny limit and stop orders when no last price is known (else they pass).
        require_last_price: bool = False

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        last = ctx.last_price(intent.symbol)
        prices = {"limit_price": intent.limit_price, "stop_price": intent.stop_price}
        given = {k: v for k, v in prices.items() if v is not None}
        band = self.settings.max_deviation_pct
        if last is None:
            if intent.order_type is OrderType.MARKET:
                return self.deny(f"market order with no last price for {intent.symbol}")
            if self.settings.require_last_price:
                return self.deny(f"no last price for {intent.symbol} to check the prices against")
            return self.allow("no last price to compare", **given)
        if not given:
            return self.allow("market order", last_price=last)
        figures: dict[str, Any] = {"last_price": last, "max_deviation_pct": band, **given}
        for key, price in given.items():
            deviation = abs(price - last) / last * 100
            figures[key.replace("_price", "_deviation_pct")] = round(deviation, 2)
            if deviation > band:
                return self.deny(
                    f"{key.replace('_', ' ')} {price} is {round(deviation, 2)}% from the last "
                    f"price {last} (band {band}%)",
                    **figures,
                )
        return self.allow(**figures)


class StaleDecision(RiskFilter):
    """Deny decisions that are too old, or past their expiry."""

    name = "stale_decision"
    description = "deny decisions older than max_age_seconds or past expires_at"

    class Settings(ComponentSettings):
        max_age_seconds: float = Field(default=300, gt=0)

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        now = ctx.now()
        if decision.expires_at is not None and now >= decision.expires_at:
            return self.deny(
                f"decision expired at {decision.expires_at.isoformat()}",
                expires_at=decision.expires_at,
                now=now,
            )
        if decision.created_at is None:
            return self.allow("no creation time; age not measurable")
        age = (now - decision.created_at).total_seconds()
        limit = self.settings.max_age_seconds
        figures: dict[str, Any] = {"age_seconds": round(age, 3), "max_age_seconds": limit}
        if age > limit:
            return self.deny(f"decision is {age:.0f}s old (max {limit:g}s)", **figures)
        return self.allow(**figures)


class LiveAccount(RiskFilter):
    """Deny every order on a live (non-paper) account unless live trading is allowed.

    It runs in every pipeline (see :data:`~tradepipe.pipeline.ALWAYS_ON_FILTERS`).
    Unset, ``allow_live`` follows ``[run] allow_live``; set, it is a lock of its own.
    """

    name = "live_account"
    description = "deny orders on a live account unless allow_live"

    class Settings(ComponentSettings):
        #: ``None``: as ``[run] allow_live``; ``false`` locks live trading even when that is on.
        allow_live: bool | None = None

    settings: Settings

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._run_allows = False

    def attach(self, runtime: Any) -> None:
        self._run_allows = bool(runtime.settings.run.allow_live)

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        paper = ctx.is_paper()
        if paper:
            return self.allow(paper=paper)
        own = self.settings.allow_live
        if own is False:
            return self.deny("live account, and [risk.live_account] allow_live is false")
        if own is None and not self._run_allows:
            return self.deny("live account, and [run] allow_live is off", paper=paper)
        return self.allow(paper=paper)


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    for cls in (
        MaxExposure,
        MaxOrdersPerMinute,
        MaxOpenOrders,
        SymbolLists,
        PriceBand,
        StaleDecision,
        LiveAccount,
    ):
        register(cls)
