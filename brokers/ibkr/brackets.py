"""A bracket's exit orders at IBKR: found by IBKR's order ids, their fills by attribution.

IBKR takes a bracket as one request: the parent carries our ``cOID``, each exit
(take-profit, stop-loss) only ``parentId`` and no ``cOID`` of its own (reference
§6.6), so neither its order-list entry nor its executions carry a client order
id we could match. What ties them to us is the order id IBKR answers for each
exit when the bracket is placed: it is kept (in this process, and in the
ledger as the exit order's broker id, so a later run or ``reconcile`` can
:meth:`Exits.track` it again), and

* the exit's status comes from ``/iserver/account/order/status/{id}``
  (cumulative fill, final states such as the cancel IBKR makes of the other
  exit once one fills);
* its fills are IBKR's own executions, attributed to it: executions without a
  ``order_ref`` of ours, of the exit's contract and side, not attributed to
  anything else, oldest first, up to the quantity the status says filled. So
  the fill recorded for an exit has IBKR's execution id, and reading the
  executions again (another run, ``reconcile``, ``broker trades``) finds it
  recorded rather than "a trade made elsewhere".

Assumption (IBKR's documentation is silent on it): an execution of a bracket
exit carries no ``order_ref``. Should IBKR ever give one, it is not one of our
client order ids, and the attribution above still applies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from tradepipe.adapter import BrokerEvent, OrderUpdate
from tradepipe.brokers.ibkr.orders import STATUS_MAP, decimal, execution
from tradepipe.clock import Clock
from tradepipe.errors import BrokerUnavailableError
from tradepipe.orders import Fill, OrderIntent, OrderStatus, Side

log = logging.getLogger("tradepipe.brokers.ibkr")


class Exit:
    """One exit order of a bracket at IBKR."""

    __slots__ = ("broker_id", "conid", "done", "filled", "intent")

    def __init__(self, intent: OrderIntent, broker_id: str) -> None:
        self.intent = intent
        self.broker_id = broker_id
        #: IBKR's contract id, learnt from its status (``None`` until then).
        self.conid: str | None = None
        self.filled = Decimal(0)
        self.done = False

    @property
    def client_order_id(self) -> str:
        return self.intent.client_order_id


class Exits:
    """Every bracket exit this adapter follows.

    :param status: reads ``/iserver/account/order/status/{id}`` (the adapter's
        session-guarded read).
    """

    def __init__(self, status: Callable[[str], Any], clock: Callable[[], Clock]) -> None:
        self._status = status
        self._clock = clock
        self._exits: dict[str, Exit] = {}
        #: Execution ids attributed to an exit, so none is counted twice.
        self._claimed: set[str] = set()

    def add(self, intent: OrderIntent, broker_id: str) -> None:
        """Follow the exit ``intent`` IBKR took under ``broker_id``."""
        if intent.client_order_id not in self._exits:
            self._exits[intent.client_order_id] = Exit(intent, broker_id)

    def placed(self, parent: OrderIntent, broker_ids: Sequence[str]) -> dict[str, str]:
        """A bracket was accepted: follow its exits, in the order they were sent.

        :returns: the exits' client order ids and IBKR's ids for them.
        """
        out = {}
        for intent, broker_id in zip(parent.exits(), broker_ids, strict=False):
            self.add(intent, broker_id)
            out[intent.client_order_id] = broker_id
        return out

    def named(self, broker_id: str) -> str | None:
        """The client order id of the exit IBKR knows as ``broker_id``, if it is one."""
        return next(
            (e.client_order_id for e in self._exits.values() if e.broker_id == broker_id), None
        )

    @property
    def open(self) -> list[Exit]:
        return [e for e in self._exits.values() if not e.done]

    def events(self, trades: Sequence[dict[str, Any]], *, statuses: bool) -> list[BrokerEvent]:
        """Fills (and with ``statuses``, final states) of the open exits.

        :param trades: IBKR's executions, as just read.
        """
        out: list[BrokerEvent] = []
        for exit_ in self.open:
            try:
                body = self._status(exit_.broker_id)
            except BrokerUnavailableError as exc:
                log.info("bracket exit %s: status not read (%s)", exit_.client_order_id, exc)
                continue
            if not isinstance(body, dict):
                continue
            if body.get("conid") is not None:
                exit_.conid = str(body["conid"])
            total = decimal(body.get("cum_fill"), Decimal(0)) or Decimal(0)
            if exit_.conid is not None:
                out.extend(self._attribute(exit_, total, trades))
            final = STATUS_MAP.get(str(body.get("order_status") or ""), OrderStatus.ACCEPTED)
            if statuses and final.is_terminal and exit_.filled >= total:
                exit_.done = True
                if final is not OrderStatus.FILLED:
                    out.append(
                        OrderUpdate(
                            client_order_id=exit_.client_order_id,
                            status=final,
                            ts=self._clock().now(),
                            broker_order_id=exit_.broker_id,
                            reason=f"IBKR status {body.get('order_status')}",
                        )
                    )
        return out

    def _attribute(
        self, exit_: Exit, total: Decimal, trades: Sequence[dict[str, Any]]
    ) -> list[Fill]:
        """IBKR's executions that make up what the exit's status says filled."""
        side = "B" if exit_.intent.side is Side.BUY else "S"
        candidates = sorted(
            (
                t
                for t in trades
                if not t.get("order_ref")
                and str(t.get("execution_id") or "") not in self._claimed
                and str(t.get("side") or "").upper().startswith(side)
                and str(t.get("conid")) == exit_.conid
            ),
            key=lambda t: int(t.get("trade_time_r") or 0),
        )
        out = []
        for item in candidates:
            fill = execution(item, exit_.intent)
            if fill is None or exit_.filled + fill.quantity > total:
                continue
            fill = fill.model_copy(
                update={
                    "client_order_id": exit_.client_order_id,
                    "broker_order_id": exit_.broker_id,
                }
            )
            self._claimed.add(fill.execution_id)
            exit_.filled += fill.quantity
            out.append(fill)
            if exit_.filled >= total:
                break
        return out
