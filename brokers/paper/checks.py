"""What the paper simulator says to an order before taking it: refusals, questions, previews.

Refused at placement, as a broker would: a non-positive quantity, a symbol with
no market data, a buy the cash cannot pay for, and a sale that would go short
unless ``allow_short`` is on.

**Questions.** With ``questions`` set, an order that passes the first two checks
meets IBKR's order questions (reference §6.4) before the money checks, one at a
time, and :class:`~tradepipe.brokers.ibkr.orders.ReplyPolicy` confirms or
declines each as it does for the Client Portal adapter: a declined question
raises :class:`~tradepipe.errors.BrokerRejectedError` in the adapter's words,
and a question the policy leaves to a person (``ask``) raises
:class:`~tradepipe.errors.BrokerQuestionError`.
:meth:`OrderChecks.preview` tells what an order would cost and whether it would
be refused, changing nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from tradepipe import OrderIntent
from tradepipe.adapter import question_declined, question_parked
from tradepipe.brokers.ibkr.orders import ReplyPolicy
from tradepipe.brokers.paper.account import PaperAccount, SimOrder
from tradepipe.brokers.paper.fills import Costs
from tradepipe.errors import BrokerRejectedError
from tradepipe.money import ZERO, cents, fmt, money_text, to_decimal

# The broker's logger: the questions are the paper broker's to log.
log = logging.getLogger("tradepipe.brokers.paper.broker")

_NEAR = Decimal("0.03")

#: The IBKR questions the simulator can ask, in the order it asks them (the
#: text is the simulator's own wording; ``{order}`` is the order, e.g. "BUY 10 AAPL LMT 101").
QUESTIONS = {
    "o354": "You are submitting an order without market data for {symbol}. We strongly "
    "recommend against this as it may result in erroneous and unexpected trades. "
    "Are you sure you want to submit this order?",
    "o163": "The following order {order} price exceeds the Percentage constraint of 3%. "
    "Are you sure you want to submit this order?",
    "o403": "This order {order} will most likely trigger and fill immediately. "
    "Are you sure you want to submit this order?",
    "o10151": "You are submitting a market order {order}: it fills at whatever price the "
    "market offers, which may differ from the last price. "
    "Are you sure you want to submit this order?",
    "o10331": "You are submitting a stop order {order}: once triggered it becomes a market "
    "order and may fill far from the stop price. Are you sure you want to submit this order?",
    "o10152": "Once active, the stop order {order} can be triggered by a brief price move and "
    "fill at a price far from the stop. Are you sure you want to submit this order?",
}
_TICKET_TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT"}


class OrderChecks:
    """The paper broker's checks on an order against an account, as its settings set them."""

    def __init__(
        self,
        broker: str,
        *,
        known: Collection[str],
        questions: Collection[str],
        policy: ReplyPolicy,
        costs: Costs,
        allow_short: bool,
        currency: str,
    ) -> None:
        self.broker = broker
        self._known = known
        asked = set(questions)
        self.questions = tuple(q for q in QUESTIONS if q in asked)
        self._policy = policy
        self._costs = costs
        self._allow_short = allow_short
        self._currency = currency

    def check(
        self, intent: OrderIntent, account: PaperAccount, replacing: SimOrder | None = None
    ) -> str:
        """Why ``intent`` is refused, or ``""``, after asking the questions that apply.

        :raises BrokerRejectedError: a question the reply policy does not confirm.
        """
        problem = self.invalid(intent, account)
        if not problem and self.questions:
            self._ask(intent, account, changing=replacing is not None)
        return problem or self.unaffordable(intent, account, replacing)

    def invalid(self, intent: OrderIntent, account: PaperAccount) -> str:
        """Why no broker would take ``intent`` at all, or ``""``."""
        if intent.quantity <= 0:
            return f"quantity must be positive, got {intent.quantity}"
        symbol = intent.symbol
        if symbol not in account.last and symbol not in self._known:
            return f"unknown symbol {symbol}: no market data for it"
        return ""

    def unaffordable(
        self, intent: OrderIntent, account: PaperAccount, replacing: SimOrder | None = None
    ) -> str:
        """Why the account cannot take ``intent`` (cash, shorting), or ``""``."""
        symbol = intent.symbol
        last = account.last.get(symbol)
        price = (
            intent.limit_price
            or intent.stop_price
            or (to_decimal(last.close) if last is not None else None)
        )
        book = account.book
        if intent.side == "buy":
            if price is None:
                return f"no price for {symbol} to check buying power against"
            cost = intent.quantity * price + self._costs.commission(intent.quantity, price)
            available = book.cash - account.reserved(exclude=replacing)
            if cost > available:
                return (
                    f"insufficient buying power: {cents(cost)} {self._currency} needed, "
                    f"{cents(available)} available"
                )
        elif not self._allow_short:
            held = book.quantity(symbol) - account.pending_sells(symbol, exclude=replacing)
            if intent.quantity > held:
                return (
                    f"short sale refused: selling {intent.quantity} {symbol} with "
                    f"{max(held, ZERO)} available (set allow_short to permit shorts)"
                )
        return ""

    # -- questions -----------------------------------------------------------------

    def asked(self, intent: OrderIntent, account: PaperAccount) -> list[str]:
        """The configured questions that apply to ``intent``, in the order asked."""
        last = account.last.get(intent.symbol)
        price = None if last is None else to_decimal(last.close)
        kind = intent.order_type
        buy = intent.side == "buy"
        limit, stop = intent.limit_price, intent.stop_price
        applies = {
            "o354": price is None,
            "o163": price is not None and limit is not None and abs(limit - price) > _NEAR * price,
            "o403": price is not None and kind != "market" and _immediate(buy, price, limit, stop),
            "o10151": kind == "market",
            "o10331": kind in ("stop", "stop_limit"),
            "o10152": kind in ("stop", "stop_limit"),
        }
        return [q for q in self.questions if applies[q]]

    def _ask(self, intent: OrderIntent, account: PaperAccount, *, changing: bool) -> None:
        """Ask the questions that apply, one at a time; raise on the first declined
        (or left to a person: a new order's, never a change's)."""
        policy = self._policy.for_order(intent.answered)
        if changing:
            policy = policy.without_ask()
        for question in self.asked(intent, account):
            verdict = policy.answer([question])
            if verdict != "confirm":
                raise self._refusal(intent, question, verdict)
            log.info(
                "order %s: the paper broker asked %s, confirmed by the reply policy",
                intent.client_order_id,
                question,
            )

    def _refusal(self, intent: OrderIntent, question: str, verdict: str) -> BrokerRejectedError:
        """The order not sent: ``question`` left to a person (``ask``), or declined, in
        the Client Portal adapter's words (tradepipe.brokers.ibkr.orders.submit)."""
        make = question_parked if verdict == "ask" else question_declined
        return make(
            self.broker,
            self._question_text(intent, question),
            [question],
            client_order_id=intent.client_order_id,
        )

    def _question_text(self, intent: OrderIntent, question: str) -> str:
        """IBKR's words for ``question`` about ``intent``."""
        prices = (intent.limit_price, intent.stop_price)
        ticket = " ".join(
            [
                intent.side.value.upper(),
                format(intent.quantity, "f"),
                intent.symbol,
                _TICKET_TYPES[intent.order_type.value],
                *(format(p, "f") for p in prices if p is not None),
            ]
        )
        return QUESTIONS[question].format(order=f'"{ticket}"', symbol=intent.symbol)

    # -- what-if -------------------------------------------------------------------

    def preview(self, intent: OrderIntent, account: PaperAccount, read_only: str) -> dict[str, Any]:
        """What placing ``intent`` would do, changing nothing (IBKR's what-if).

        ``read_only`` is why this process cannot trade the account, or ``""``.
        See :meth:`tradepipe.brokers.paper.broker.PaperBroker.preview` for the answer.
        """
        symbol = intent.symbol
        buy = intent.side == "buy"
        book = account.book
        last = account.last.get(symbol)
        price = intent.limit_price or intent.stop_price
        if price is None and last is not None:
            price = to_decimal(last.close)
        if price is not None:
            price = self._costs.slipped(price, intent)
        notional = commission = cash_after = None
        if price is not None:
            notional = intent.quantity * price
            commission = self._costs.commission(intent.quantity, price)
            # Booked as a fill would be (Book.apply): the signed amount, in cents.
            cash_after = book.cash - cents((notional if buy else -notional) + commission)
        held = book.quantity(symbol)
        error = self.invalid(intent, account)
        if intent.client_order_id in account.orders:
            error = f"order {intent.client_order_id} is already placed"
        asked = self.asked(intent, account) if self.questions and not error else []
        policy = self._policy.for_order(intent.answered)
        verdicts = ((q, policy.answer([q])) for q in asked)
        unanswered = next(((q, v) for q, v in verdicts if v != "confirm"), None)
        if unanswered is not None:
            error = self._refusal(intent, *unanswered).message
        error = error or self.unaffordable(intent, account)
        if read_only:
            error = read_only
        return {
            "symbol": symbol,
            "side": intent.side.value,
            "quantity": fmt(intent.quantity),
            "order_type": intent.order_type.value,
            "price": fmt(price),
            "notional": fmt(notional),
            "commission": fmt(commission),
            "cash": {"before": money_text(book.cash), "after": money_text(cash_after)},
            "position": {
                "before": fmt(held),
                "after": fmt(held + intent.quantity if buy else held - intent.quantity),
            },
            "questions": asked,
            "error": error or None,
        }


def _immediate(buy: bool, last: Decimal, limit: Decimal | None, stop: Decimal | None) -> bool:
    """Would an order with these prices trigger and fill at ``last`` right away?"""
    if stop is not None and (stop > last if buy else stop < last):
        return False
    return limit is None or (limit >= last if buy else limit <= last)
