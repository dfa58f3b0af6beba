"""The interface every broker adapter implements.

The paper simulator, the Client Portal Gateway adapter and the OAuth Web API
adapter all implement :class:`Broker`, so the executor and the CLI never know
which one they talk to. Operations an adapter cannot offer raise
:class:`~tradepipe.errors.BrokerCapabilityError`.

Errors: adapters translate everything underneath them (httpx, JSON, the
broker's own error bodies) into the :mod:`tradepipe.errors` tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import AwareDatetime
from tradepipe.component import Component
from tradepipe.errors import (
    BrokerAuthError,
    BrokerCapabilityError,
    BrokerQuestionError,
    BrokerRejectedError,
)
from tradepipe.market import Bar, Quote
from tradepipe.options.chain import OptionQuote
from tradepipe.order_rules import OrderRules
from tradepipe.orders import Fill, OrderIntent, OrderStatus
from tradepipe.portfolio import AccountSummary, Position
from tradepipe.record import Record


class BrokerStatus(Record):
    """Whether the broker can be used right now, and what to do if not."""

    broker: str
    connected: bool
    authenticated: bool
    account_id: str | None = None
    is_paper: bool = True
    message: str = ""


class OrderUpdate(Record):
    """A broker's report that an order we sent changed status."""

    client_order_id: str
    status: OrderStatus
    ts: AwareDatetime
    broker_order_id: str | None = None
    reason: str = ""
    filled_quantity: Decimal | None = None
    #: A bracket's exit orders the broker accepted with the parent: their client
    #: order ids (``OrderIntent.exits``) and the broker's ids for them.
    exits: dict[str, str] | None = None


#: An update from its values in this order, where one is built for every order (the
#: run's own answers, the simulator's); see :meth:`~tradepipe.record.Record.maker`.
order_update = OrderUpdate.maker("client_order_id", "status", "ts", "broker_order_id", "reason")


class OrderReport(Record):
    """An order as the broker sees it (open orders, reconciliation)."""

    client_order_id: str | None
    broker_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    filled_quantity: Decimal
    status: OrderStatus
    order_type: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


BrokerEvent = OrderUpdate | Fill


class Broker(Component):
    """Base class of broker adapters."""

    #: True when the executor must make an intent durable in the ledger before
    #: sending it (every real broker). The in-process simulator says False.
    requires_durable_intents: bool = True
    #: True when order updates arrive only through :meth:`poll`, which the
    #: executor then calls after every event. A broker that reports everything
    #: from :meth:`on_bar` says False and is polled only at the end of a run.
    needs_polling: bool = True
    #: True for a simulator (the paper broker): its orders are not real. A replay
    #: of past bars sends orders to a broker that is not one only when the
    #: settings say so (``[run] replay_to_broker``): real orders at old prices.
    simulated: ClassVar[bool] = False
    #: The live feed a live run on this broker uses when ``[run] feed`` replays history
    #: and ``[run] live_feed`` names none (IBKR: its stream; the simulator: synthetic).
    live_feed: ClassVar[str] = ""
    #: How long after a send the broker may take to show an order in its
    #: lookups. An order whose send had no clear answer, and which no lookup
    #: finds once this has passed, never reached the broker (it is rejected).
    order_visibility_seconds: float = 0.0
    #: The broker's daily maintenance window (``"HH:MM-HH:MM Zone"``), when a
    #: live run sends nothing (``[run] maintenance_window = "broker"``); empty
    #: for none. IBKR resets its systems every night, 23:45-00:45 New York.
    maintenance_window: ClassVar[str] = "23:45-00:45 America/New_York"
    #: The rules a change must keep (:meth:`modify`), as the settings set them
    #: (:func:`~tradepipe.pipeline.make_component` sets them; whole shares until then).
    order_rules: OrderRules = OrderRules()

    def connect(self) -> BrokerStatus:
        raise NotImplementedError

    def ledger_account(self, account_id: str | None) -> str:
        """The key the ledger files this broker's trades under (see
        :func:`tradepipe.sink.run_account`): ``account:<id>`` for the account
        the broker connected to. A simulator overrides it: an in-memory
        account lives as long as its run (``""``: the run's own).
        """
        return f"account:{account_id or self.name}"

    def disconnect(self) -> None:
        """Release connections and background threads. Idempotent."""

    def status(self) -> BrokerStatus:
        raise NotImplementedError

    def account(self) -> AccountSummary:
        raise NotImplementedError

    def positions(self) -> list[Position]:
        raise NotImplementedError

    def open_orders(self) -> list[OrderReport]:
        raise NotImplementedError

    def order(self, client_order_id: str) -> OrderReport | None:
        """The broker's view of one order, or ``None`` when it has no such order.

        ``None`` must mean the broker answered and does not know the order; a
        failure to ask raises :class:`~tradepipe.errors.BrokerError`.
        """
        raise NotImplementedError

    def place(self, intent: OrderIntent) -> OrderUpdate:
        """Send ``intent``; return ACCEPTED, REJECTED or UNKNOWN (ambiguous send)."""
        raise NotImplementedError

    def cancel(self, client_order_id: str) -> OrderUpdate:
        """Ask to cancel; the answer is PENDING_CANCEL until the broker confirms."""
        raise NotImplementedError

    def modify(
        self,
        client_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        """Change a working order's quantity or prices.

        An adapter judges the change by :attr:`order_rules`
        (:meth:`~tradepipe.order_rules.OrderRules.modified`) before it saves or
        sends anything.

        :raises InvalidOrderError: the change breaks an order rule; nothing changed.
        :raises BrokerRejectedError: the broker refused it (or knows no such order).
        """
        raise BrokerCapabilityError(f"{self.name} cannot modify orders", broker=self.name)

    def fills(self, since: datetime | None = None) -> list[Fill]:
        raise NotImplementedError

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        raise BrokerCapabilityError(f"{self.name} has no quotes", broker=self.name)

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        raise BrokerCapabilityError(f"{self.name} has no history", broker=self.name)

    def scan(self, **params: Any) -> list[dict[str, Any]]:
        raise BrokerCapabilityError(f"{self.name} has no scanner", broker=self.name)

    def option_chain(self, underlying: str, expiry: date | None = None) -> list[OptionQuote]:
        """The options listed on ``underlying``: of ``expiry``, or of every listed expiry.

        Each :class:`~tradepipe.options.chain.OptionQuote` carries its price and
        delta where the broker supplies them (``None`` otherwise); option
        strategies choose their legs from it.

        :raises BrokerCapabilityError: the broker lists no option chains.
        """
        raise BrokerCapabilityError(f"{self.name} has no option chains", broker=self.name)

    def on_bar(self, bar: Bar) -> Sequence[BrokerEvent]:
        """A market event passed by; a simulator matches orders against it."""
        return ()

    def on_quote(self, quote: Quote) -> Sequence[BrokerEvent]:
        """A live quote came in; a simulator may fill working orders at it."""
        return ()

    def on_history(self, bars: Sequence[Bar]) -> None:
        """Bars from before a live run's first one (its warm-up), oldest first.

        A simulator learns the prices from them; it never fills an order at one.
        """

    def poll(self) -> Sequence[BrokerEvent]:
        """Order updates and fills that arrived since the last call."""
        return ()

    def refresh(self) -> Sequence[BrokerEvent]:
        """Like :meth:`poll`, but asks now, not at the broker's usual polling pace.

        Called once at the end of a run so its summary shows what the broker
        says about every order; still within the broker's own rate limits.
        """
        return self.poll()

    def track(self, intent: OrderIntent, broker_order_id: str | None) -> None:
        """An order an earlier run sent, as the ledger knows it: follow it as one's own.

        Called before settling such orders, so a broker that cannot find an
        order by its client order id alone (IBKR's bracket exits carry none)
        can look it up and attribute its fills. The default does nothing.
        """

    def logout(self) -> str:
        """End the broker's session, so using it again needs a new login; say what happened.

        :raises BrokerCapabilityError: the broker has no session to end.
        """
        raise BrokerCapabilityError(f"{self.name} has no session to log out of", broker=self.name)

    def session_problem(self) -> BrokerAuthError | None:
        """The lost session the broker noticed by itself (a keep-alive), if any.

        A live run asks between bars, so it waits for the session (saying so)
        instead of reading decisions it could not send. ``None``: nothing known.
        """
        return None

    def await_session(self, timeout: float, on_wait: Callable[[], bool] | None = None) -> bool:
        """The session was lost (:class:`~tradepipe.errors.BrokerAuthError`): wait for it.

        Waits up to ``timeout`` seconds for the session to come back (a person
        logging in again, say) and answers whether it did. ``on_wait`` is called
        between attempts (a live run rewrites its status there); answering
        ``False`` ends the wait early. Brokers whose session cannot come back by
        itself answer ``False`` at once.
        """
        return False


def question_declined(
    broker: str, question: str, message_ids: Sequence[str], **context: Any
) -> BrokerRejectedError:
    """The refusal of an order whose broker asked a question the reply policy does not confirm.

    IBKR's adapters and the paper simulator (which asks IBKR's questions) say
    it in the same words, naming where the answer is configured.
    """
    shown = ", ".join(i for i in message_ids if i) or "no id"
    return BrokerRejectedError(
        f'{broker}: order not sent: IBKR asked "{question}" ({shown}), which the reply policy '
        "does not confirm; to accept such questions add the id to `confirm` in "
        f"[default.brokers.{broker}] of settings.toml (or in the table of the environment "
        "you run, e.g. [paper.brokers.…])",
        broker=broker,
        question=question,
        message_ids=list(message_ids),
        **context,
    )


def question_parked(
    broker: str, question: str, message_ids: Sequence[str], **context: Any
) -> BrokerQuestionError:
    """The order whose broker asked a question the reply policy leaves to a person (``ask``).

    IBKR voids a question's reply id at the next request, so nobody can answer it
    minutes later: the question is declined at once and the order is not sent. A
    person who approves the question sends the order again, with its ids confirmed.
    """
    shown = ", ".join(i for i in message_ids if i) or "no id"
    return BrokerQuestionError(
        f'{broker}: order not sent: IBKR asked "{question}" ({shown}), which waits for a '
        "person (reply policy `ask`); approved, the order is sent again",
        broker=broker,
        question=question,
        message_ids=list(message_ids),
        **context,
    )
