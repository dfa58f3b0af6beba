"""Risk verdicts and the base class of risk filters.

A risk filter looks at one sized :class:`~tradepipe.orders.OrderIntent` and
answers pass, deny or reduce, with a reason and the numbers it used. Filters run
in the configured order; the first denial stops the order; a filter that raises
denies it (fail closed). A denial is a recorded event, never an exception.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pydantic import AwareDatetime, Field
from tradepipe.component import Component
from tradepipe.money import ZERO
from tradepipe.record import Record

if TYPE_CHECKING:
    from datetime import datetime

    from tradepipe.decisions import Decision
    from tradepipe.orders import OrderIntent


class Outcome(StrEnum):
    PASS = "pass"
    DENY = "deny"
    REDUCE = "reduce"


class RiskVerdict(Record):
    """What one filter said about one intent."""

    decision_id: str
    client_order_id: str
    filter: str
    seq: int
    outcome: Outcome
    reason: str
    quantity_before: Decimal
    quantity_after: Decimal
    figures: dict[str, Any] = Field(default_factory=dict)
    ts: AwareDatetime


class Check(NamedTuple):
    """A filter's answer; build it with :meth:`RiskFilter.allow` and friends."""

    outcome: Outcome
    reason: str
    quantity: Decimal | None
    figures: dict[str, Any]


class RiskContext(Protocol):
    """What a filter may look at. The executor provides it."""

    def now(self) -> datetime: ...

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (filled orders only)."""
        ...

    def pending(self, symbol: str) -> Decimal:
        """Signed quantity working orders for ``symbol`` have yet to fill."""
        ...

    def exposure(self, symbol: str) -> Decimal:
        """``position + pending``: what limits on exposure must look at."""
        ...

    def symbols(self) -> dict[str, Decimal]:
        """Every symbol held or with a working order, mapped to its multiplier."""
        ...

    def open_orders(self) -> int:
        """How many orders are working at the broker."""
        ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def equity(self) -> Decimal: ...

    def cash(self) -> Decimal: ...

    def reserved_cash(self) -> Decimal:
        """Cash that open buy orders will use when they fill."""
        ...

    def is_paper(self) -> bool: ...

    def account_key(self) -> str:
        """The traded account as a key with no account number in it (per-account state)."""
        ...


class RiskFilter(Component):
    """Base class of a risk filter: implement :meth:`check`."""

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        """Judge ``intent``. Return :meth:`allow`, :meth:`deny` or :meth:`reduce`."""
        raise NotImplementedError

    @staticmethod
    def allow(reason: str = "", **figures: Any) -> Check:
        return Check(Outcome.PASS, reason, None, figures)

    @staticmethod
    def deny(reason: str, **figures: Any) -> Check:
        return Check(Outcome.DENY, reason, None, figures)

    @staticmethod
    def reduce(quantity: Decimal, reason: str, **figures: Any) -> Check:
        return Check(Outcome.REDUCE, reason, quantity, figures)


def rule_verdict(
    decision_id: str,
    client_order_id: str,
    name: str,
    outcome: Outcome,
    reason: str,
    ts: datetime,
    *,
    before: Decimal = ZERO,
    figures: dict[str, Any] | None = None,
) -> RiskVerdict:
    """The verdict of a rule judged outside the filters: seq 0, nothing after it."""
    return RiskVerdict.trusted(
        decision_id=decision_id,
        client_order_id=client_order_id,
        filter=name,
        seq=0,
        outcome=outcome,
        reason=reason,
        quantity_before=before,
        quantity_after=ZERO,
        figures={} if figures is None else figures,
        ts=ts,
    )
