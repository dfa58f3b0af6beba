"""Handing every record of a run to the sinks, the event hooks and the event log.

The executor decides what happened; the :class:`Recorder` makes sure every
sink, every observer plugin and the log hear of it, in that order. Sink
methods and observers are looked up once per run, so a hook nobody implements
costs nothing per record.
"""

from __future__ import annotations

import logging
from typing import Any

from tradepipe.decisions import Decision
from tradepipe.host import PluginHost
from tradepipe.logs import FILE_ONLY
from tradepipe.orders import Fill, Order, OrderEvent
from tradepipe.risk import Outcome, RiskVerdict, verdict_of
from tradepipe.sink import Sink

log = logging.getLogger("tradepipe.events")


class Recorder:
    """Fans records out to sinks, observers and the event log."""

    def __init__(self, sinks: list[Sink], host: PluginHost, *, log_events: bool = True) -> None:
        """:param log_events: write each record to the event log (at ``INFO``); a replay
        leaves it to the ledger (``[logging] replay_events``)."""
        self._sinks = sinks
        self._sink_decision = [s.record_decision for s in sinks]
        self._sink_verdict = [s.record_verdict for s in sinks]
        self._sink_order = [s.record_order for s in sinks]
        self._sink_event = [s.record_order_event for s in sinks]
        self._sink_fill = [s.record_fill for s in sinks]
        self._obs_decision = host.observers("tradepipe_decision_made")
        self._obs_rejected = host.observers("tradepipe_decision_rejected")
        self._obs_verdict = host.observers("tradepipe_risk_verdict")
        self._obs_order = host.observers("tradepipe_order_event")
        self._obs_fill = host.observers("tradepipe_order_filled")
        self._obs_alert = host.observers("tradepipe_alert")
        self._log = log_events and log.isEnabledFor(logging.INFO)
        #: Orders this run follows that another run holds: client order id -> that run
        #: (empty: a run still going, which records them itself).
        self._elsewhere: dict[str, str] = {}
        if len(sinks) == 1:
            # One sink: a record nothing else hears of (no observer, no event log) goes
            # straight to the sink's method, one call less for each of an order's rows.
            sink = sinks[0]
            self.order = sink.record_order  # type: ignore[method-assign]
            if not self._log and self._obs_decision is None:
                self.decision = sink.record_decision  # type: ignore[method-assign]
            if not self._log and self._obs_verdict is None:
                self.verdict = sink.record_verdict  # type: ignore[method-assign]
                self.verdict_values = sink.record_verdict_values  # type: ignore[method-assign]

    def belongs_to(self, client_order_id: str, run_id: str) -> None:
        """Record what becomes of ``client_order_id`` in ``run_id``, the run that holds it."""
        self._elsewhere[client_order_id] = run_id

    def left_to_its_run(self, client_order_id: str) -> None:
        """Record nothing of ``client_order_id``: the run that sent it is still going
        and records what becomes of it itself."""
        self._elsewhere[client_order_id] = ""

    def decision(self, decision: Decision) -> None:
        for record in self._sink_decision:
            record(decision)
        if self._obs_decision is not None:
            self._obs_decision(decision=decision)
        if self._log:
            log.info(
                "DecisionMade decision=%s source=%s %s %s confidence=%s",
                decision.id,
                decision.source,
                decision.action,
                decision.symbol,
                decision.confidence,
            )

    def rejected(self, source: str, raw: Any, problems: str, *, told: bool = False) -> None:
        """Record what ``source`` gave that is not a decision.

        :param told: the caller tells the person itself (a command's answer): the
            warning then goes to the log file only.
        """
        log.warning(
            "decision from %s rejected: %s", source, problems, extra=FILE_ONLY if told else None
        )
        for sink in self._sinks:
            sink.record_decision_rejected(raw, source, problems)
        if self._obs_rejected is not None:
            self._obs_rejected(raw=raw, source=source, error=problems)

    def verdict(self, verdict: RiskVerdict) -> None:
        for record in self._sink_verdict:
            record(verdict)
        if self._obs_verdict is not None:
            self._obs_verdict(verdict=verdict)
        if self._log and verdict.outcome is not Outcome.PASS:
            log.info(
                "RiskVerdict decision=%s order=%s filter=%s %s: %s",
                verdict.decision_id,
                verdict.client_order_id,
                verdict.filter,
                verdict.outcome,
                verdict.reason,
            )

    def verdict_values(self, *values: Any) -> None:
        """A verdict of the risk chain as its values (see
        :meth:`Sink.record_verdict_values <tradepipe.sink.Sink.record_verdict_values>`);
        with one sink and nothing else listening, they go straight to it."""
        self.verdict(verdict_of(*values))

    def order(self, order: Order) -> None:
        for record in self._sink_order:
            record(order)

    def order_event(self, order: Order, event: OrderEvent) -> None:
        held = self._elsewhere.get(event.client_order_id) if self._elsewhere else None
        if held is None:
            for record in self._sink_event:
                record(event)
        elif held:
            for sink in self._sinks:
                sink.record_reconciled(held, [event], [])
        else:
            return  # its own run, still going, records and announces it
        if self._obs_order is not None:
            self._obs_order(order=order, event=event)
        if self._log:
            intent = order.intent
            log.info(
                "%s order=%s decision=%s %s %s %s%s",
                event.name,
                event.client_order_id,
                event.decision_id,
                intent.side,
                intent.quantity,
                intent.symbol,
                f" reason={event.reason}" if event.reason else "",
            )

    def fill(self, fill: Fill) -> None:
        held = self._elsewhere.get(fill.client_order_id) if self._elsewhere else None
        if held is None:
            for record in self._sink_fill:
                record(fill)
        elif held:
            for sink in self._sinks:
                sink.record_reconciled(held, [], [fill])
        else:
            return  # its own run, still going, records and announces it
        if self._obs_fill is not None:
            self._obs_fill(fill=fill)
        if self._log:
            log.info(
                "Fill execution=%s order=%s decision=%s %s %s %s @ %s",
                fill.execution_id,
                fill.client_order_id,
                fill.decision_id,
                fill.side,
                fill.quantity,
                fill.symbol,
                fill.price,
            )

    def approval(self, request: Any) -> None:
        """A sized order waits for a person: in every sink, then told (notifications)."""
        for sink in self._sinks:
            sink.record_approval(request)
        decision, intent = request.decision, request.intent
        self.alert(
            "approval",
            f"{intent.side.value} {intent.quantity} {intent.symbol} from {decision.source} waits "
            f"for you ({request.reason}), until {request.expires_at:%Y-%m-%d %H:%M} UTC: "
            f"`tradepipe approve {request.approval_id}` or "
            f"`tradepipe reject {request.approval_id} --reason …`",
        )
        if self._log:
            log.info(
                "Approval %s waits: decision=%s %s",
                request.approval_id,
                decision.id,
                request.reason,
            )

    def take_approved(self, namespace: str, run_id: str, now: Any) -> list[Any]:
        """What a person approved for ``namespace`` and no one sent: taken for ``run_id``."""
        taken: list[Any] = []
        for sink in self._sinks:
            taken.extend(sink.take_approved(namespace, run_id, now))
        return taken

    def approval_done(
        self, approval_id: str, status: str, note: str, client_order_id: str | None
    ) -> None:
        """How an approved request this run took ended."""
        for sink in self._sinks:
            sink.approval_done(approval_id, status, note, client_order_id)
        if self._log:
            log.info("Approval %s: %s (%s)", approval_id, status, note)

    def alert(self, kind: str, message: str) -> None:
        """Tell observers (notifications) what a person should know at once."""
        if self._obs_alert is not None:
            self._obs_alert(kind=kind, message=message)

    def flush(self) -> None:
        for sink in self._sinks:
            sink.flush()
