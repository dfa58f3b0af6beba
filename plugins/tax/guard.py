"""``named_lots``: a decision may name only tax lots its account holds open.

A sale that names its lots (a decision's ``lots``, ``tradepipe order stock
--lot``) is checked before anything is sent: each name must be an open lot of
the traded account, of the order's symbol, on the side the order closes (a
sell closes long lots, a buy short ones). The lots are those of the ledger's
fills as they stand, relieved first in, first out. A decision naming no lots
passes without a word, so the filter runs in every pipeline at no cost.
"""

from __future__ import annotations

from typing import Any

from tradepipe.decisions import Decision
from tradepipe.errors import LotError, PersistenceError
from tradepipe.orders import OrderIntent, Side
from tradepipe.risk import Check, RiskContext, RiskFilter
from tradepipe.sink import account_key_shown, account_label


class NamedLots(RiskFilter):
    """Deny a decision naming tax lots its account does not hold open (always on)."""

    name = "named_lots"
    description = "deny a sale naming tax lots the account does not hold open"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._runtime: Any = None

    def attach(self, runtime: Any) -> None:
        self._runtime = runtime

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        if not decision.lots:
            return self.allow()
        try:
            held = self._open_lots()
        except (PersistenceError, LotError) as exc:
            return self.deny(f"the sale names tax lots, but they cannot be read: {exc}")
        if held is None:
            return self.deny("the sale names tax lots, but there is no ledger to find them in")
        short = intent.side is Side.BUY
        side = "short" if short else "long"
        mine = [lot for lot in held if lot.symbol == intent.symbol and lot.short == short]
        account = self._runtime.run.account
        for wanted in decision.lots:
            if not any(lot.named(wanted) for lot in mine):
                return self.deny(
                    f"lot {wanted!r} is not an open {side} {intent.symbol} lot of the account "
                    f"this order trades, {account_label(account)} "
                    f"(`tradepipe tax lots --open --account {account_key_shown(account)}` "
                    "lists them)"
                )
        return self.allow(f"relieves the named lots first: {', '.join(decision.lots)}")

    def _open_lots(self) -> list[Any] | None:
        """The account's open lots, or ``None`` when there is no ledger."""
        from tradepipe.plugins.ledger.queries import ledger_sink
        from tradepipe.plugins.tax.lots_db import current_lots

        runtime = self._runtime
        if runtime is None or runtime.host is None:
            return None
        sink = ledger_sink(runtime.settings, runtime.host)
        if sink is None:
            return None
        engine = sink.engine()
        try:
            options = runtime.settings.tax.wash_sale_options
            result = current_lots(
                engine, runtime.run.account, sink.where, wash_sale_options=options
            )
        finally:
            engine.dispose()
        return list(result.open)
