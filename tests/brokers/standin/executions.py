"""Orders read back and executed: live orders, order status, trades; the fill control call.

A cancel only sets ``PendingCancel``: the next read that shows the order still shows it, the
read after that shows ``Cancelled``. Executions carry ``order_ref`` (the cOID), no order id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .model import CONIDEX_COMBO, DONE, STATUSES, Order, fmt_price, fmt_size
from .portfolio import PortfolioMixin
from .wire import Request, fail, is_number, parse_bool, parse_int


class ExecutionsMixin(PortfolioMixin):
    """Order reads, executions, and fills (which move positions and cash)."""

    @staticmethod
    def _settle_cancel(order: Order) -> None:
        """Called before a read shows ``order``: a PendingCancel already shown is now final."""
        if order.status == "PendingCancel" and order.cancel_seen:
            order.status = "Cancelled"

    @staticmethod
    def _mark_shown(order: Order) -> None:
        if order.status == "PendingCancel":
            order.cancel_seen = True

    def live_orders(self, req: Request) -> Any:
        self._require_accounts()
        if parse_bool(req.query.get("force")):
            return {"orders": [], "snapshot": False}  # force only clears the cache
        if self.cold_order_reads > 0:
            # A new brokerage session: IBKR is still subscribing to the account's orders.
            self.cold_order_reads -= 1
            return {"orders": [], "snapshot": False}
        for order in self.orders.values():
            self._settle_cancel(order)
        account = req.query.get("accountId")
        wanted: set[str] = set()
        for raw in (req.query.get("filters") or "").split(","):
            name = raw.strip().replace("_", "").lower()
            if name and name != "sortbytime":
                wanted.add(name)
        shown = []
        for order in self.orders.values():
            if account and order.ticket.account != account:
                continue
            if wanted and order.status.lower() not in wanted:
                continue
            shown.append(order.live())
        for order in self.orders.values():
            self._mark_shown(order)
        return {"orders": shown, "snapshot": True}

    def order_status(self, req: Request, order_id: str) -> Any:
        order = self._find_order(order_id)
        if order is None:
            fail("Service Unavailable", 503)
        self._settle_cancel(order)
        view = order.status_view()
        self._mark_shown(order)
        return view

    def trades_list(self, req: Request) -> Any:
        days = req.query.get("days")
        span = min(max(parse_int(days, "days"), 1), 7) if days else 1
        cutoff = self.clock.now_ms() - span * 86_400_000
        account = req.query.get("accountId")
        return [
            dict(t)
            for t in self.trades
            if t["trade_time_r"] >= cutoff and (not account or t["account"] == account)
        ]

    def _control_order(self, body: dict[str, Any]) -> Order:
        order = self.orders.get(parse_int(body.get("order_id"), "order_id"))
        if order is None:
            fail(f"unknown order_id {body.get('order_id')!r}", 404)
        return order

    def fill(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._control_order(body)
        qty, price = body.get("quantity"), body.get("price")
        if not is_number(qty) or qty <= 0 or not is_number(price):
            fail("quantity must be a positive number and price a number")
        if order.status in DONE:
            fail(f"order {order.order_id} is {order.status}")
        if qty > order.remaining + 1e-9:
            fail(f"quantity {qty} exceeds the remaining {order.remaining}")
        qty, price = float(qty), float(price)
        total = order.filled + qty
        order.avg_price = (order.avg_price * order.filled + price * qty) / total
        order.filled = total
        order.last_fill_ms = ts = self.clock.now_ms()
        if order.remaining <= 1e-9:
            order.status = "Filled"
        elif order.status != "PendingCancel":
            order.status = "Submitted"
        combo = CONIDEX_COMBO.fullmatch(order.ticket.conidex)
        if combo is not None:
            # IBKR reports a combo's execution as one per leg and one for the combo
            # (BAG, at the net), all under the order's reference and one trade time;
            # what the account holds is the legs.
            commission = self._combo_legs(order, combo.group(2), qty, price, ts, body)
            gross = qty * price * 100
        else:
            commission = max(1.0, round(0.005 * qty, 2))
            gross = qty * price * order.multiplier
            self.cash += -gross - commission if order.ticket.side == "BUY" else gross - commission
            self._apply_fill_to_position(order, qty, price)
        exec_id = self._exec_id()
        side = "B" if order.ticket.side == "BUY" else "S"
        verb = "Bought" if side == "B" else "Sold"
        trade: dict[str, Any] = {
            "execution_id": exec_id,
            "symbol": order.ticker,
            "supports_tax_opt": "1",
            "side": side,
            "order_description": f"{verb} {fmt_size(qty)} @ {fmt_price(price)} on ISLAND",
            "trade_time": datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y%m%d-%H:%M:%S"),
            "trade_time_r": ts,
            "size": qty,
            "price": fmt_price(price),
            "submitter": "standin",
            "exchange": "ISLAND",
            "commission": f"{commission:.2f}",
            "net_amount": round(gross, 2),
            "account": order.ticket.account,
            "accountCode": order.ticket.account,
            "company_name": order.company_name,
            "contract_description_1": order.ticker,
            "sec_type": order.sec_type,
            "listing_exchange": order.listing_exchange,
            "conid": order.ticket.conid,
            "conidEx": order.ticket.conidex,
            "clearing_id": "IB",
            "clearing_name": "IB",
            "liquidation_trade": "0",
            "is_event_trading": "0",
        }
        if order.ticket.coid is not None:
            trade["order_ref"] = order.ticket.coid
        self.trades.append(trade)
        return {"execution_id": exec_id, "order": order.internal()}

    def _exec_id(self) -> str:
        return f"0000e0d5.{0x65000000 + next(self.exec_ids):08x}.01.01"

    def _combo_legs(
        self, order: Order, legs: str, qty: float, net: float, ts: int, body: dict[str, Any]
    ) -> float:
        """Book and report each leg of a combo's fill; return the commission paid.

        Leg prices are the control call's ``leg_prices`` (conid -> price) when given,
        else the stand-in's own marks, the first leg taking what makes
        Σ price × ratio the net.
        """
        parsed = [(int(c), int(r)) for c, r in (part.split("/") for part in legs.split(","))]
        given = body.get("leg_prices") or {}
        prices = [float(given.get(str(c), self._last_price(c))) for c, _r in parsed]
        if not given:
            rest = sum(p * r for p, (_c, r) in zip(prices[1:], parsed[1:], strict=True))
            prices[0] = round((net - rest) / parsed[0][1], 4)
        buying = order.ticket.side == "BUY"
        paid = 0.0
        for (conid, ratio), price in zip(parsed, prices, strict=True):
            size = qty * abs(ratio)
            leg_buy = (ratio > 0) == buying
            ticker, sec_type, listing, name, _cur, multiplier = self._contract(conid)
            commission = max(1.0, round(0.65 * size, 2))
            gross = size * price * multiplier
            self.cash += -gross - commission if leg_buy else gross - commission
            self._book(conid, size if leg_buy else -size, price, sec_type, multiplier)
            paid += commission
            side = "B" if leg_buy else "S"
            trade: dict[str, Any] = {
                "execution_id": self._exec_id(),
                "symbol": ticker,
                "side": side,
                "order_description": f"{'Bought' if leg_buy else 'Sold'} {fmt_size(size)} "
                f"@ {fmt_price(price)} on ISLAND",
                "trade_time": datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y%m%d-%H:%M:%S"),
                "trade_time_r": ts,
                "size": size,
                "price": fmt_price(price),
                "exchange": "ISLAND",
                "commission": f"{commission:.2f}",
                "net_amount": round(gross, 2),
                "account": order.ticket.account,
                "accountCode": order.ticket.account,
                "company_name": name,
                "contract_description_1": ticker,
                "sec_type": sec_type,
                "listing_exchange": listing,
                "conid": conid,
                "conidEx": str(conid),
            }
            if order.ticket.coid is not None:
                trade["order_ref"] = order.ticket.coid
            self.trades.append(trade)
        return round(paid, 2)

    def force_status(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("status") not in STATUSES:
            fail(f"status must be one of {list(STATUSES)}")
        order = self._control_order(body)
        order.status, order.cancel_seen = body["status"], False
        return order.internal()
