"""Decisions that wait for a person: the ``[approval]`` rules, and what waits.

:func:`approval_reason` says whether (and why) a sized order that every risk
filter let through waits for a person instead of going to the broker. The
executor then records an :class:`ApprovalRequest` (through its sinks) and
sends nothing; ``tradepipe approve`` sends it later, after every filter has
judged it again at the prices of then, and ``tradepipe reject`` drops it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from tradepipe.decisions import Decision
from tradepipe.instruments import Option
from tradepipe.orders import OrderIntent
from tradepipe.settings import ApprovalSettings


@dataclass(frozen=True)
class ApprovalRequest:
    """A sized order waiting for a person.

    :param approval_id: what a person names it by (``ap-…``): the same for the
        same decision in the same session, so it waits once.
    :param reason: the rule that made it wait.
    :param expires_at: when it stops waiting unanswered.
    """

    approval_id: str
    namespace: str
    run_id: str
    decision: Decision
    intent: OrderIntent
    notional: Decimal | None
    reason: str
    created_at: dt.datetime
    expires_at: dt.datetime


def approval_id(namespace: str, decision_id: str) -> str:
    key = f"{len(namespace)}:{namespace}|{decision_id}"
    return "ap-" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()


def notional_of(intent: OrderIntent, price: Decimal | None) -> Decimal | None:
    """What the order is worth: its quantity at its limit price (else ``price``),
    times an option's multiplier."""
    at = intent.limit_price or price
    if at is None:
        return None
    multiplier = intent.instrument.multiplier if isinstance(intent.instrument, Option) else 1
    return intent.quantity * at * multiplier


def approval_reason(
    rules: ApprovalSettings,
    decision: Decision,
    intent: OrderIntent,
    price: Decimal | None,
    *,
    paper: bool,
) -> str:
    """Why ``intent`` waits for a person; ``""`` when it does not."""
    if rules.live_only and paper:
        return ""
    if rules.all:
        return "every decision waits ([approval] all)"
    if decision.source in rules.sources:
        return f"decisions of {decision.source} wait ([approval] sources)"
    if rules.options and intent.instrument is not None and intent.instrument.kind != "stock":
        return "option orders wait ([approval] options)"
    if rules.below_confidence is not None and decision.confidence < rules.below_confidence:
        return (
            f"confidence {decision.confidence:g} is below {rules.below_confidence:g} "
            "([approval] below_confidence)"
        )
    if rules.above_quantity is not None and intent.quantity > rules.above_quantity:
        return f"{intent.quantity} is more than {rules.above_quantity} ([approval] above_quantity)"
    notional = notional_of(intent, price)
    if rules.above_notional is not None:
        if notional is None:
            return "no price to tell what the order is worth ([approval] above_notional)"
        if notional > rules.above_notional:
            return (
                f"worth {notional:.2f}, more than {rules.above_notional} "
                "([approval] above_notional)"
            )
    return ""


def expiry(rules: ApprovalSettings, decision: Decision, now: dt.datetime) -> dt.datetime:
    """When a request made ``now`` expires: after ``expire_minutes``, never past the
    decision's own ``expires_at``."""
    until = now + dt.timedelta(minutes=rules.expire_minutes)
    if decision.expires_at is not None:
        until = min(until, decision.expires_at)
    return until
