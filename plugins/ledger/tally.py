"""A replay's summary figures, counted as the sink writes them.

At the end of a run, ``tradepipe run-pipeline`` prints its summary
(:mod:`.summary`): order counts by status, denials by filter, commissions and
the trade statistics. Read back from the ledger, that is every status change
and every fill of the run again, about a tenth of a long replay's time. The
sink that wrote those rows has seen each of them go by, so it counts them on
the way (:class:`RunTally`) and hands the counts to the summary instead.

Only a replay's sink does this, and its counts are used only when they are all
there is: the run's status changes and fills in the ledger number what the sink
wrote (:func:`.summary.written`, two index lookups), so nothing else wrote to
the run (another process settling its orders, ``tradepipe reconcile``) and no
batch went missing. Otherwise, as for every live run, the summary is read back.
The counts follow the rules of :func:`.summary.figures` exactly; the tests hold
the two to the same answer.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tradepipe.decisions import Action
from tradepipe.orders import TERMINAL, Fill, OrderStatus
from tradepipe.plugins.ledger.summary import ORDER_STATES
from tradepipe.plugins.research.metrics import FillsOutOfOrder, TradeFigures, TradeTally

#: Open lots beyond which the trade figures are left to the ledger (about 400
#: bytes each): a run that only ever buys would otherwise hold one per fill.
MOST_OPEN_LOTS = 100_000
_FINAL = frozenset(status.value for status in TERMINAL)
_SENT = OrderStatus.SUBMITTED.value
_HOLD = Action.HOLD.value


class RunTally:
    """What a run's records add up to, counted as they are written.

    ``trades`` is ``None`` once a fill came out of time order or with another
    UTC offset than the first (the ledger would give those back in an order of
    its own), or more than :data:`MOST_OPEN_LOTS` lots were open at once: the
    summary reads the fills back instead. ``exact`` is false once an order's
    changes broke the order :data:`~tradepipe.orders.TRANSITIONS` gives them
    (a change after its end, or before an earlier one): the ledger's counts
    then stand.
    """

    __slots__ = (
        "_changes",
        "_open",
        "_trades",
        "_utc_offset",
        "commissions",
        "decisions",
        "denials",
        "exact",
        "fills",
        "holds",
        "orders",
        "rejected",
        "rows",
        "run_id",
        "sent",
    )

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.decisions = self.rejected = self.holds = self.orders = self.fills = self.sent = 0
        self.commissions = Decimal(0)
        #: Terminal statuses counted by change (an order reaches one once).
        self._changes: dict[str, int] = {}
        #: Orders without a terminal status yet: their latest (place, status).
        self._open: dict[str, tuple[int, str]] = {}
        #: Denying filter -> [judgings it denied, the latest one's reason].
        self.denials: dict[str, list[Any]] = {}
        self._trades: TradeTally | None = TradeTally()
        self._utc_offset: dt.timedelta | None = None
        self.exact = True
        #: The status changes and fill rows written (see :func:`.summary.written`).
        self.rows = [0, 0]

    def decision(self, action: str) -> None:
        self.decisions += 1
        if action == _HOLD:
            self.holds += 1

    def denial(self, by: str, reason: str) -> None:
        seen = self.denials.get(by)
        if seen is None:
            self.denials[by] = [1, reason]
        else:
            seen[0] += 1
            seen[1] = reason

    def change(self, client_order_id: str, seq: int, status: str) -> None:
        self.rows[0] += 1
        if status == _SENT:
            self.sent += 1
        if status in _FINAL:
            self._changes[status] = self._changes.get(status, 0) + 1
            self._open.pop(client_order_id, None)
            return
        latest = self._open.get(client_order_id)
        if latest is None:
            if seq > 1:
                # Not its first change, and not open: it ended before, or this came
                # ahead of an earlier change. The ledger counts such an order ended.
                self.exact = False
            self._open[client_order_id] = (seq, status)
        elif seq > latest[0]:
            self._open[client_order_id] = (seq, status)

    def fill(self, fill: Fill) -> None:
        """One fill as the ledger counts it (a combo's once) and the fills its
        trade statistics read (a combo's legs, else the fill itself)."""
        legs = fill.legs
        self.fills += 1
        self.rows[1] += 1 + len(legs)
        self.commissions += fill.commission
        trades = self._trades
        if trades is None:
            return
        for leg in legs or (fill,):  # what it books (Fill.booked), without the call
            offset = leg.ts.utcoffset()
            if self._utc_offset is None:
                self._utc_offset = offset
            try:
                if offset != self._utc_offset:
                    raise FillsOutOfOrder("fills with different UTC offsets")
                trades.add(leg)
            except FillsOutOfOrder:
                self._trades = None
                return
        if trades.open_lots > MOST_OPEN_LOTS:
            self._trades = None

    @property
    def trades(self) -> TradeFigures | None:
        return None if self._trades is None else self._trades.figures()

    def figures(self) -> dict[str, Any]:
        """The counts as :func:`.summary.figures` gives them."""
        states = dict.fromkeys(ORDER_STATES, 0)
        states.update(self._changes)
        for _seq, status in self._open.values():
            states[status] += 1
        not_sent = sorted(
            ({"by": by, "count": n, "reason": reason} for by, (n, reason) in self.denials.items()),
            key=lambda stop: (-stop["count"], stop["by"]),
        )
        return {
            "states": states,
            "sent": self.sent,
            "commissions": self.commissions,
            "decisions": self.decisions,
            "rejected": self.rejected,
            "holds": self.holds,
            "not_sent": not_sent,
            "orders": self.orders,
            "fills": self.fills,
        }
