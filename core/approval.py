"""Decisions that wait for a person: the ``[approval]`` rules, and what waits.

:func:`approval_reason` says whether (and why) a sized order that every risk
filter let through waits for a person instead of going to the broker. The
executor then records an :class:`ApprovalRequest` (through its sinks) and
sends nothing; ``tradepipe approve`` sends it later, after every filter has
judged it again at the prices of then, and ``tradepipe reject`` drops it.

A broker's question about an order can wait the same way (reply policy
``ask``): the order is not sent, the question waits as a request of kind
``question``, and approving it sends the order again (under a new client
order id: the first was refused) with the question's ids confirmed.

A live run sends what was approved for its session itself (it holds the
broker's session and the account); without one, ``tradepipe approve`` and the
API send it. :func:`ending` says how a request that was sent ended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from tradepipe.decisions import Decision
from tradepipe.instruments import Option
from tradepipe.money import cents
from tradepipe.orders import Order, OrderIntent, OrderStatus
from tradepipe.settings import ApprovalSettings


@dataclass(frozen=True)
class ApprovalRequest:
    """A sized order waiting for a person.

    :param approval_id: what a person names it by (``ap-…``): the same for the
        same decision (and send) in the same session, so it waits once.
    :param reason: the rule that made it wait (or the broker's question).
    :param expires_at: when it stops waiting unanswered.
    :param kind: ``decision`` (an ``[approval]`` rule) or ``question`` (the broker asked).
    :param attempt: 0 for a decision; for a question, the send of the order it
        approves (1 for the second send, …).
    :param question: the broker's question, in its words.
    :param message_ids: the question's ids (IBKR's ``o163``…).
    :param answered: every id the order is sent with confirmed once approved.
    :param client_order_id: the order the broker asked about.
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
    kind: str = "decision"
    attempt: int = 0
    question: str = ""
    message_ids: tuple[str, ...] = ()
    answered: tuple[str, ...] = ()
    client_order_id: str = ""


@dataclass(frozen=True)
class Approved:
    """An approved request a run is to send: the decision, and for a broker's
    question, the send it is (``attempt``) and the ids confirmed with it."""

    approval_id: str
    decision: Decision
    attempt: int = 0
    answered: tuple[str, ...] = ()


#: How many times one decision's order may wait on a broker's questions.
MAX_ATTEMPTS = 5


def approval_id(namespace: str, decision_id: str, attempt: int = 0) -> str:
    key = f"{len(namespace)}:{namespace}|{decision_id}"
    if attempt:
        key += f"|q{attempt}"
    return "ap-" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()


def ending(order: Order | None, denial: str) -> tuple[str, str, str | None]:
    """How an approved request ended once judged again: ``sent`` (an order went to
    the broker; the note says what became of it, and its client order id comes
    third) or ``denied`` (the note says why)."""
    if order is None or order.status is OrderStatus.DENIED:
        why = order.reason if order is not None else denial
        return "denied", why or "not sent", None
    cid = order.client_order_id
    return "sent", f"order {cid}, {order.status.value} when sent", cid


def notional_of(intent: OrderIntent, price: Decimal | None) -> Decimal | None:
    """What the order is worth: its quantity at its limit price (else ``price``),
    times an option's multiplier."""
    at = intent.limit_price or price
    if at is None:
        return None
    multiplier = intent.instrument.multiplier if isinstance(intent.instrument, Option) else 1
    return cents(intent.quantity * at * multiplier)


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
    source = decision.source
    # "llm" names the source, so every model it asks; "llm:gpt-4o" one model.
    if any(source == s or source.startswith(f"{s}:") for s in rules.sources):
        return f"decisions of {source} wait ([approval] sources)"
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
