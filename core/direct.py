"""Single decisions without a feed: what ``tradepipe order`` runs.

A decision given directly takes exactly the path a strategy's decision takes in
a run: recorded, sized, judged by every configured risk filter, made durable,
sent to the broker, its status changes and fills recorded. It does so inside a
short run of its own, so a manual order has a row in the ledger's runs table
and is as auditable as an automatic one. With ``dry_run`` nothing is sent and
nothing is written to the ledger: the verdicts are computed and reported.

A decision document is read in full before that run opens
(:func:`execute_document`): one that is no decision is refused with its
reason and leaves the ledger as it was. Orders working at the broker that an
earlier run already recorded are not recorded again by each short run (see
:meth:`~tradepipe.executor.Executor.start`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradepipe.approval import ApprovalRequest
from tradepipe.clock import Clock, SystemClock
from tradepipe.decision_schema import read_decision
from tradepipe.decisions import Decision, RejectedDecision
from tradepipe.errors import BrokerCapabilityError, BrokerError
from tradepipe.executor import Executor
from tradepipe.host import PluginHost
from tradepipe.instruments import Stock
from tradepipe.logs import FILE_ONLY
from tradepipe.options.chain import ChainCache
from tradepipe.orders import Fill, Order, OrderEvent, OrderStatus
from tradepipe.pipeline import Pipeline, build_pipeline, open_run
from tradepipe.risk import RiskVerdict
from tradepipe.settings import AppSettings
from tradepipe.sink import Sink

log = logging.getLogger(__name__)
_WAITING = frozenset({OrderStatus.SUBMITTED, OrderStatus.UNKNOWN, OrderStatus.ACCEPTED})
_NOT_SENT = frozenset({OrderStatus.INITIALIZED, OrderStatus.DENIED})
#: Opens a one-off run: ``open_run(dry, clock)`` (:func:`direct_run` over the caller's settings).
RunOpener = Callable[[bool, Clock], AbstractContextManager["Direct"]]


@dataclass
class Outcome:
    """What became of one decision."""

    decision: Decision
    verdicts: list[RiskVerdict] = field(default_factory=list)
    order: Order | None = None
    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    preview: dict[str, Any] | None = None
    sent: bool = False
    #: The request it waits in, when an ``[approval]`` rule caught it (no order yet).
    waiting: ApprovalRequest | None = None

    def as_dict(self) -> dict[str, Any]:
        order = self.order
        return {
            "decision": self.decision.model_dump(mode="json"),
            "verdicts": [v.model_dump(mode="json") for v in self.verdicts],
            "order": None
            if order is None
            else {
                "client_order_id": order.client_order_id,
                "status": order.status.value,
                "broker_order_id": order.broker_order_id,
                "reason": order.reason,
                "intent": order.intent.model_dump(mode="json"),
                "filled_quantity": str(order.filled_quantity),
            },
            "events": [e.model_dump(mode="json") for e in self.events],
            "fills": [f.model_dump(mode="json") for f in self.fills],
            "preview": self.preview,
            "sent": self.sent,
            "approval": None
            if self.waiting is None
            else {
                "approval_id": self.waiting.approval_id,
                "kind": self.waiting.kind,
                "reason": self.waiting.reason,
                "expires_at": self.waiting.expires_at.isoformat(),
            },
        }


class _Watch(Sink):
    """Keeps the records of the decision being executed, to report them."""

    name = "watch"

    def __init__(self) -> None:
        super().__init__()
        self.verdicts: list[RiskVerdict] = []
        self.events: list[OrderEvent] = []
        self.fills: list[Fill] = []
        self.waiting: ApprovalRequest | None = None

    def reset(self) -> None:
        self.verdicts, self.events, self.fills, self.waiting = [], [], [], None

    def record_approval(self, request: ApprovalRequest) -> None:
        self.waiting = request

    def record_verdict(self, verdict: RiskVerdict) -> None:
        self.verdicts.append(verdict)

    def record_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)

    def record_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


class Direct:
    """An open one-off run that executes decisions handed to it."""

    #: How ``--wait`` waits when no other clock is given (tests swap these).
    default_sleep: Callable[[float], None] = staticmethod(time.sleep)
    default_monotonic: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(
        self,
        pipeline: Pipeline,
        executor: Executor,
        watch: _Watch,
        source: str,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.executor = executor
        self.source = source
        self._watch = watch
        self._sleep = sleep or self.default_sleep
        self._monotonic = monotonic or self.default_monotonic

    @property
    def broker(self) -> Any:
        return self.pipeline.broker

    def execute(self, decision: Decision, *, wait: float = 0.0) -> Outcome:
        """Run ``decision`` through sizing, the filters and (unless dry) the broker.

        Give the decision its ``source`` and ``created_at``, so its id (and the
        client order id derived from it) is known to the caller.

        :param wait: seconds to keep asking the broker while the order is still
            on its way (submitted, unknown, accepted but not filled).
        """
        watch = self._watch
        watch.reset()
        executor = self.executor
        if decision.instrument is None or isinstance(decision.instrument, Stock):
            # An option's or a combo's symbol is no stock to quote: its price comes
            # from the chain the legs were chosen from, or from the limit price.
            self._mark(decision.symbol)
        order = executor.handle(self.source, decision)
        # Initialized: a dry run judged it; denied: the filters (or the rules) refused it.
        sent = order is not None and order.status not in _NOT_SENT
        if sent and order is not None:
            executor.flush()
            if order.status is OrderStatus.UNKNOWN:
                executor.settle()
            deadline = self._monotonic() + wait
            while order.status in _WAITING and self._monotonic() < deadline:
                self._sleep(min(1.0, max(0.0, deadline - self._monotonic())))
                executor.settle()
        executor.flush()
        return Outcome(
            decision=decision,
            verdicts=list(watch.verdicts),
            order=order,
            events=list(watch.events),
            fills=list(watch.fills),
            sent=sent,
            waiting=watch.waiting,
        )

    def read(self, raw: Any, *, today: dt.date | None = None) -> Decision | RejectedDecision:
        """A parsed decision document, read with this run's broker; or why it is no decision.

        An options strategy's legs are chosen from the broker's option chain
        (``dte`` counted from the document's ``created_at``, else ``today``),
        a covered call's stock priced by the broker's quote; the chosen option's
        or combo's chain price becomes the price sizing and the filters value
        it at. A chain that cannot be read, or cannot give the strategy,
        rejects the document, naming the field.
        """
        chain = ChainCache(self.broker.option_chain)
        symbol = raw.get("symbol") if isinstance(raw, dict) else None
        item = read_decision(
            raw, self.source, chain=chain, today=today, underlying_price=self._quote(symbol)
        )
        if isinstance(item, Decision) and item.instrument is not None:
            price = chain.price_of(item.instrument)
            if price is not None and price > 0:
                self.executor.ctx.set_price(item.symbol, float(price))
        return item

    def _quote(self, symbol: Any) -> Decimal | None:
        """The stock's price from the broker, if it gives one."""
        if not isinstance(symbol, str):
            return None
        try:
            quotes = self.broker.quotes([symbol.upper()])
        except BrokerError:
            return None
        return next((q.last or q.mid for q in quotes if q.last or q.mid), None)

    def _mark(self, symbol: str) -> None:
        """Give sizing and the filters a price: without a feed, ask the broker."""
        ctx = self.executor.ctx
        if ctx.last_price(symbol) is not None:
            return
        try:
            quotes = self.broker.quotes([symbol])
        except BrokerError as exc:
            log.info("no quote for %s (%s); filters that need a price will say so", symbol, exc)
            return
        for quote in quotes:
            price = quote.last or quote.mid
            if quote.symbol == symbol and price is not None and price > 0:
                ctx.set_price(symbol, float(price))

    def preview(self, decision: Decision) -> Outcome:
        """Judge ``decision`` and ask the broker what the order would do (what-if)."""
        if not self.executor.dry_run:
            raise RuntimeError("preview needs a dry run: it must never send")
        outcome = self.execute(decision)
        preview = getattr(self.broker, "preview", None)
        if preview is None:
            raise BrokerCapabilityError(
                f"broker {self.broker.name!r} offers no what-if preview", broker=self.broker.name
            )
        order = outcome.order
        if order is not None and order.status is OrderStatus.INITIALIZED:
            outcome.preview = preview(order.intent)
        return outcome

    def act(self, item: Decision, *, what_if: bool = False, wait: float = 0.0) -> Outcome:
        """Execute a decision, or with ``what_if`` preview it."""
        return self.preview(item) if what_if else self.execute(item, wait=wait)


def execute_document(
    raw: Any,
    open_run: RunOpener,
    *,
    source: str,
    dry_run: bool = False,
    what_if: bool = False,
    wait: float = 0.0,
) -> tuple[Outcome | RejectedDecision, str | None]:
    """A parsed decision document, read in full, then (if it is a decision) executed.

    The document is read before a run that writes is opened: one that is no
    decision is returned with why, and the ledger is left as it was (no run,
    no record). An options strategy's legs come from the broker's option chain,
    so it is read in a dry run first (which connects the broker and writes
    nothing); the chain's price goes with the decision into the run that
    executes it. Returns the outcome and the ledger run's id (``None`` when dry
    or refused).
    """
    dry = dry_run or what_if
    clock = SystemClock()
    price: Decimal | None = None
    if not (isinstance(raw, dict) and raw.get("options") is not None):
        item = read_decision(raw, source)
    else:
        with open_run(True, clock) as probe:
            item = probe.read(raw, today=clock.now().date())
            if dry and isinstance(item, Decision):
                return probe.act(item, what_if=what_if, wait=wait), None
            price = (
                probe.executor.ctx.last_price(item.symbol) if isinstance(item, Decision) else None
            )
    if isinstance(item, RejectedDecision):
        log.warning("decision from %s rejected: %s", source, item.error, extra=FILE_ONLY)
        return item, None
    with open_run(dry, clock) as run:
        if price is not None:
            run.executor.ctx.set_price(item.symbol, float(price))
        return run.act(item, what_if=what_if, wait=wait), None if dry else run.pipeline.run.run_id


@contextmanager
def direct_run(
    settings: AppSettings,
    host: PluginHost,
    *,
    source: str = "cli",
    dry_run: bool = False,
    clock: Clock | None = None,
) -> Iterator[Direct]:
    """Open a feedless run of the configured broker, filters and sinks.

    With ``dry_run`` the configured sinks are left out: nothing is written.
    """
    # No strategy runs here, so none is made: making one may read its files
    # (decision_files' state) or need settings only a pipeline run uses.
    settings = settings.model_copy(
        update={"run": settings.run.model_copy(update={"strategies": []})}
    )
    pipeline = build_pipeline(settings, host, clock=clock or SystemClock())
    pipeline.run = pipeline.run.model_copy(update={"feed": "", "strategies": (source,)})
    watch = _Watch()
    pipeline.sinks = [watch] if dry_run else [*pipeline.sinks, watch]
    with open_run(pipeline) as executor:
        executor.dry_run = dry_run
        executor.session_wait = 0  # a one-off command says the session is lost; it never waits
        yield Direct(pipeline, executor, watch, source)
