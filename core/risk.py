"""Risk verdicts and the base class of risk filters.

A risk filter looks at one sized :class:`~tradepipe.orders.OrderIntent` and
answers pass, deny or reduce, with a reason and the numbers it used. Filters run
in the configured order; the first denial stops the order; a filter that raises
denies it (fail closed). A denial is a recorded event, never an exception.

:class:`RiskChain` is that order: the rules no filter may waive (a decision's
expiry, one order per decision, :mod:`tradepipe.order_rules`), the always-on
guards, then the configured filters. It gives every verdict as a
:class:`RiskVerdict` for the caller to record.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pydantic import AwareDatetime, Field
from tradepipe.component import Component
from tradepipe.money import ZERO, to_decimal
from tradepipe.record import Record

if TYPE_CHECKING:
    from datetime import datetime

    from tradepipe.decisions import Decision
    from tradepipe.order_rules import OrderRules
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


_check = tuple.__new__
_PASS, _DENY, _REDUCE = Outcome.PASS, Outcome.DENY, Outcome.REDUCE


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

    def closable(self, symbol: str) -> Decimal:
        """The signed quantity held less what working orders that reduce it have
        yet to fill, never past flat: what a close may take. Working orders the
        other way do not count (they may never fill)."""
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

    # Built as tuples of their class directly: the named tuple's own constructor is
    # one more Python call, and every filter answers every order.
    @staticmethod
    def allow(reason: str = "", **figures: Any) -> Check:
        return _check(Check, (_PASS, reason, None, figures))

    @staticmethod
    def deny(reason: str, **figures: Any) -> Check:
        return _check(Check, (_DENY, reason, None, figures))

    @staticmethod
    def reduce(quantity: Decimal, reason: str, **figures: Any) -> Check:
        return _check(Check, (_REDUCE, reason, quantity, figures))


#: A verdict from its values in this order (see :meth:`Record.maker`): one per filter per order.
verdict_of = RiskVerdict.maker(
    "decision_id",
    "client_order_id",
    "filter",
    "seq",
    "outcome",
    "reason",
    "quantity_before",
    "quantity_after",
    "figures",
    "ts",
)


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
    return verdict_of(
        decision_id,
        client_order_id,
        name,
        0,
        outcome,
        reason,
        before,
        ZERO,
        {} if figures is None else figures,
        ts,
    )


class RiskChain:
    """Who judges an order, in order; see the module docstring."""

    def __init__(
        self,
        guards: Sequence[RiskFilter],
        filters: Sequence[RiskFilter],
        rules: OrderRules,
        namespace: str,
    ) -> None:
        #: (verdict seq, filter, quiet): the always-on guards come first, seq 0,
        #: quiet (recorded only when they deny or say why).
        self._judges = [(0, g, True) for g in guards] + [
            (seq, f, False) for seq, f in enumerate(filters, start=1)
        ]
        self._rules = rules
        self._namespace = namespace

    def refusal(
        self, decision: Decision, cid: str, now: datetime, sent: Container[str]
    ) -> RiskVerdict | None:
        """A decision that expired, or whose order ``cid`` was already ``sent``: its denial."""
        if decision.expires_at is not None and now >= decision.expires_at:
            name, reason = "expired", f"decision expired at {decision.expires_at.isoformat()}"
        elif cid in sent:
            name, reason = (
                "duplicate",
                f"decision {decision.id} already produced order {cid} "
                f"(in this run or an earlier run of session {self._namespace!r})",
            )
        else:
            return None
        return rule_verdict(decision.id, cid, name, Outcome.DENY, reason, now)

    def breach(self, intent: OrderIntent, now: datetime) -> RiskVerdict | None:
        """The denial of a sized order that breaks :mod:`tradepipe.order_rules`, if it does."""
        problem = self._rules.check(intent, now)
        if not problem:
            return None
        return rule_verdict(
            intent.decision_id,
            intent.client_order_id,
            "order_rules",
            Outcome.DENY,
            problem,
            now,
            before=intent.quantity,
        )

    def judge(
        self,
        intent: OrderIntent,
        decision: Decision,
        ctx: RiskContext,
        now: datetime,
        record: Callable[..., None],
    ) -> tuple[OrderIntent, str | None]:
        """Have the guards and filters judge ``intent``, each verdict handed to ``record``
        as its values, in :class:`RiskVerdict`'s field order (a recorder's
        :meth:`~tradepipe.recorder.Recorder.verdict_values`): a chain records four
        verdicts an order, and a sink that can keep them without the record skips
        building it.

        Each verdict is recorded before the next filter looks (a filter may
        keep state, and what was said stays on record if a later step fails).

        :returns: the intent as the filters left it (reduced, perhaps), and the
            denial (``"filter: reason"``), or ``None`` if none denied it.
        """
        for seq, flt, quiet in self._judges:
            before = intent.quantity
            after = before
            try:
                outcome, reason, quantity, figures = flt.check(intent, decision, ctx)
                if type(outcome) is not Outcome:
                    outcome = Outcome(outcome)
                if outcome is _REDUCE:
                    quantity = _reduced(quantity)
                    if quantity is None:
                        outcome = _DENY
                        reason = reason or "reduced to nothing"
                    elif quantity < before:
                        after = quantity
                        intent = intent.with_quantity(quantity)
                    else:
                        outcome = _PASS  # a "reduction" that reduces nothing
            except Exception as exc:  # a broken filter must not let an order through
                outcome, reason, figures = (
                    _DENY,
                    f"filter failed: {type(exc).__name__}: {exc}",
                    {},
                )
            if outcome is _DENY:
                after = ZERO
            elif quiet and outcome is _PASS and not reason:
                continue  # an always-on guard that had nothing to say
            record(
                decision.id,
                intent.client_order_id,
                flt.name,
                seq,
                outcome,
                reason,
                before,
                after,
                figures,
                now,
            )
            if outcome is _DENY:
                return intent, f"{flt.name}: {reason}"
        return intent, None


def _reduced(quantity: Any) -> Decimal | None:
    """A filter's reduced quantity as a decimal, or ``None`` if it leaves nothing."""
    if quantity is None:
        return None
    value = to_decimal(quantity)
    if not value.is_finite() or value <= 0:
        return None
    return value
