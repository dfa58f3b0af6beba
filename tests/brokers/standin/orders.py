"""Placing and changing orders: place, reply, suppress, whatif, modify, cancel.

Tickets are checked strictly; a duplicate ``cOID`` is refused with IBKR's text; question
chains are answered through ``/iserver/reply/{id}``, and any other request in between makes
the reply id unknown.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from .model import (
    CONIDEX_COMBO,
    CONIDEX_SINGLE,
    DONE,
    NEEDS_AUX_PRICE,
    NEEDS_PRICE,
    ORDER_TYPES,
    TIFS,
    Order,
    PendingQuestion,
    Ticket,
    fmt_size,
)
from .state import State
from .wire import Request, fail, is_number, parse_int

MARKET_DATA_WARNING = (
    "21/You are trying to submit an order without having market data for this instrument. "
    "IB strongly recommends against this kind of blind trading which may result in erroneous "
    "or unexpected trades."
)


class OrdersMixin(State):
    """Order placement and change endpoints."""

    def _parse_ticket(self, raw: Any, account: str, label: str) -> Ticket:
        if not isinstance(raw, dict):
            fail(f"{label}: an order must be a JSON object")

        def need(key: str) -> Any:
            if key not in raw or raw[key] is None:
                fail(f"{label}: missing required field '{key}'")
            return raw[key]

        def typed(key: str, check: Callable[[Any], bool], kind: str) -> Any:
            value = raw.get(key)
            if value is not None and not check(value):
                fail(f"{label}: field '{key}' must be {kind}")
            return value

        acct = need("acctId")
        if not isinstance(acct, str):
            fail(f"{label}: field 'acctId' must be a string")
        if acct != account:
            fail(f"{label}: acctId {acct} does not match the account in the path ({account})")
        has_conid, has_conidex = raw.get("conid") is not None, raw.get("conidex") is not None
        if has_conid and has_conidex:
            fail(f"{label}: send either 'conid' or 'conidex', not both")
        if not has_conid and not has_conidex:
            fail(f"{label}: missing required field 'conid' (or 'conidex')")
        if has_conid:
            conid = raw["conid"]
            if not isinstance(conid, int) or isinstance(conid, bool) or conid <= 0:
                fail(f"{label}: field 'conid' must be a positive integer")
            conidex = str(conid)
        else:
            conidex = raw["conidex"]
            if not isinstance(conidex, str):
                fail(f"{label}: field 'conidex' must be a string")
            match = CONIDEX_SINGLE.fullmatch(conidex) or CONIDEX_COMBO.fullmatch(conidex)
            if match is None:
                fail(f"{label}: malformed conidex '{conidex}'")
            conid = int(match.group(1))
        order_type = need("orderType")
        if order_type not in ORDER_TYPES:
            fail(f"{label}: unsupported orderType {order_type!r}")
        side = need("side")
        if not isinstance(side, str) or side.upper() not in ("BUY", "SELL"):
            fail(f"{label}: field 'side' must be BUY or SELL")
        quantity = need("quantity")
        if not is_number(quantity) or quantity <= 0:
            fail(f"{label}: field 'quantity' must be a positive number")
        tif = need("tif")
        if tif not in TIFS:
            fail(f"{label}: unsupported tif {tif!r}")
        price = typed("price", is_number, "a number")
        aux = typed("auxPrice", is_number, "a number")
        if order_type in NEEDS_PRICE and price is None:
            fail(f"{label}: orderType {order_type} needs 'price'")
        if order_type in NEEDS_AUX_PRICE and (aux is None or price is None):
            fail(f"{label}: orderType {order_type} needs 'price' and 'auxPrice'")
        outside = typed("outsideRTH", lambda v: isinstance(v, bool), "a boolean")
        coid = typed("cOID", lambda v: isinstance(v, str) and v != "", "a non-empty string")
        parent = typed("parentId", lambda v: isinstance(v, str) and v != "", "a non-empty string")
        group = typed("isSingleGroup", lambda v: isinstance(v, bool), "a boolean")
        sec_type = typed("secType", lambda v: isinstance(v, str), "a string")
        return Ticket(
            raw=dict(raw),
            account=acct,
            conid=conid,
            conidex=conidex,
            sec_type=sec_type,
            side=side.upper(),
            order_type=order_type,
            quantity=float(quantity),
            tif=tif,
            price=None if price is None else float(price),
            aux_price=None if aux is None else float(aux),
            outside_rth=bool(outside),
            coid=coid,
            parent_coid=parent,
            single_group=bool(group),
        )

    def _parse_order_body(self, body: Any, account: str) -> list[Ticket]:
        if isinstance(body, dict) and "orders" in body:
            raw_orders = body["orders"]
        elif isinstance(body, list):
            raw_orders = body
        else:
            fail('body must be {"orders": [...]} (or a bare array of orders)')
        if not isinstance(raw_orders, list) or not raw_orders:
            fail("'orders' must be a non-empty array")
        tickets = [self._parse_ticket(o, account, f"order {i}") for i, o in enumerate(raw_orders)]
        coids = [t.coid for t in tickets if t.coid is not None]
        for i, t in enumerate(tickets):
            if t.parent_coid is not None and t.parent_coid not in coids:
                fail(f"order {i}: parentId {t.parent_coid!r} is not the cOID of an order here")
        if len(tickets) > 1:
            bracket = all(t.parent_coid is not None for t in tickets[1:])
            oca = all(t.single_group for t in tickets)
            if not (bracket or oca):
                fail("only one unrelated order may be placed per request")
        return tickets

    def _duplicate_coid(self, tickets: list[Ticket]) -> str | None:
        seen: set[str] = set()
        for t in tickets:
            if t.coid is None:
                continue
            if t.coid in self.coids or t.coid in seen:
                return t.coid
            seen.add(t.coid)
        return None

    def _questions_to_ask(self) -> list[str]:
        return [m for m in self.question_ids if m not in self.suppressed]

    def place_orders(self, req: Request, account: str) -> Any:
        self._require_account(account)
        tickets = self._parse_order_body(req.body, account)
        duplicate = self._duplicate_coid(tickets)
        if duplicate is not None:
            return {
                "error": f"Order couldn't be submitted: Local order ID={duplicate} "
                "is already registered."
            }
        questions = self._questions_to_ask()
        if questions:
            self.pending = PendingQuestion(uuid.uuid4().hex, questions, "place", tickets)
            return self.pending.question()
        return self._register(tickets)

    def _register(self, tickets: list[Ticket]) -> Any:
        duplicate = self._duplicate_coid(tickets)
        if duplicate is not None:
            return {
                "error": f"Order couldn't be submitted: Local order ID={duplicate} "
                "is already registered."
            }
        by_coid: dict[str, int] = {}
        answer = []
        for t in tickets:
            ticker, sec_type, listing, name, currency, multiplier = self._contract(t.conid)
            if CONIDEX_COMBO.fullmatch(t.conidex):
                sec_type = "BAG"
            order = Order(
                order_id=next(self.order_ids),
                ticket=t,
                ticker=ticker,
                sec_type=sec_type,
                listing_exchange=listing,
                company_name=name,
                currency=currency,
                multiplier=multiplier,
                created_ms=self.clock.now_ms(),
                parent_id=by_coid.get(t.parent_coid) if t.parent_coid else None,
            )
            self.orders[order.order_id] = order
            if t.coid is not None:
                self.coids.add(t.coid)
                by_coid[t.coid] = order.order_id
            answer.append(
                {
                    "order_id": str(order.order_id),
                    "order_status": order.status,
                    "encrypt_message": "1",
                }
            )
        price = self.fill_market_at
        if price is not None:
            # A market that takes market orders at once: the parent of each request fills.
            first = self.orders[int(answer[0]["order_id"])]
            if first.ticket.order_type == "MKT":
                self.fill({"order_id": first.order_id, "quantity": first.remaining, "price": price})
        return answer

    def reply(self, req: Request, reply_id: str) -> Any:
        pending = self.pending
        if pending is None or pending.reply_id != reply_id:
            fail(f"reply id not found: '{reply_id}'")
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("confirmed"), bool):
            fail('body must be {"confirmed": true|false}')
        if not body["confirmed"]:
            self.pending = None
            return {"error": "Order was not confirmed and has been discarded."}
        pending.remaining.pop(0)
        if pending.remaining:
            pending.reply_id = uuid.uuid4().hex
            return pending.question()
        self.pending = None
        if pending.kind == "modify" and pending.order_id is not None:
            return self._apply_modify(pending.order_id, pending.tickets[0])
        return self._register(pending.tickets)

    def suppress(self, req: Request) -> Any:
        body = req.body
        ids = body.get("messageIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            fail('body must be {"messageIds": ["o163", ...]}')
        if len(ids) > 51:
            fail("at most 51 message ids per request")
        self.suppressed.update(ids)
        return {"status": "submitted"}

    def suppress_reset(self, req: Request) -> Any:
        self.suppressed.clear()
        return {"status": "submitted"}

    def whatif(self, req: Request, account: str) -> Any:
        self._require_account(account)
        ticket = self._parse_order_body(req.body, account)[0]
        _, _, _, _, _, multiplier = self._contract(ticket.conid)
        price = ticket.price if ticket.price is not None else self._last_price(ticket.conid)
        value = ticket.quantity * price * multiplier
        commission = max(1.0, round(0.005 * ticket.quantity, 2))
        signed = ticket.quantity if ticket.side == "BUY" else -ticket.quantity
        current = float(self.positions.get(ticket.conid, {}).get("position", 0.0))
        after = current + signed
        signed_mv, gross, _ = self._market_value()
        equity = self.cash + signed_mv
        margin_change = 0.25 * (abs(after) - abs(current)) * price * multiplier
        initial_now = 0.25 * gross
        maintenance_now = 0.2 * gross
        available = equity - initial_now
        error = None
        if margin_change > available:
            error = "Insufficient buying power for this order (stand-in)."

        def triple(now: float, change: float) -> dict[str, str]:
            return {
                "current": f"{round(now):,}",
                "change": f"{round(change):,}",
                "after": f"{round(now + change):,}",
            }

        return {
            "amount": {
                "amount": f"{value:,.2f} {self._contract(ticket.conid)[4]} "
                f"({fmt_size(ticket.quantity)} Shares)",
                "commission": f"{commission:g} USD",
                "total": f"{value + commission:,.2f} USD",
            },
            "equity": triple(equity, -commission),
            "initial": triple(initial_now, margin_change),
            "maintenance": triple(maintenance_now, 0.8 * margin_change),
            "position": {
                "current": fmt_size(current),
                "change": fmt_size(signed),
                "after": fmt_size(after),
            },
            "warn": None if ticket.conid in self.streaming else MARKET_DATA_WARNING,
            "error": error,
        }

    def modify_order(self, req: Request, account: str, order_id: str) -> Any:
        self._require_accounts()
        self._require_account(account)
        number = parse_int(order_id, "orderId")
        order = self.orders.get(number)
        if order is None:
            return {"error": f"OrderID {number} doesn't exist"}
        body = req.body
        if not isinstance(body, dict) or "orders" in body:
            fail("modify takes one order object (not wrapped in 'orders', not an array)")
        ticket = self._parse_ticket(body, account, "order")
        if order.status in DONE or order.status == "PendingCancel":
            return {"error": f"OrderID {number} cannot be modified: it is {order.status}"}
        if ticket.conid != order.ticket.conid or ticket.side != order.ticket.side:
            return {"error": f"OrderID {number}: conid and side cannot be modified"}
        if ticket.quantity < order.filled:
            return {"error": f"OrderID {number}: quantity is below the filled quantity"}
        questions = self._questions_to_ask() if self.question_on_modify else []
        if questions:
            self.pending = PendingQuestion(
                uuid.uuid4().hex, questions, "modify", [ticket], order_id=number
            )
            return self.pending.question()
        return self._apply_modify(number, ticket)

    def _apply_modify(self, number: int, ticket: Ticket) -> Any:
        order = self.orders.get(number)
        if order is None or order.status in DONE or order.status == "PendingCancel":
            return {"error": f"OrderID {number} cannot be modified"}
        old = order.ticket
        # the order keeps its identity (cOID, parent) whatever the ticket repeats
        ticket.coid, ticket.parent_coid = old.coid, old.parent_coid
        order.ticket = ticket
        if order.filled and order.remaining == 0:
            order.status = "Filled"
        return [{"order_id": str(number), "order_status": order.status, "encrypt_message": "1"}]

    def cancel_order(self, req: Request, account: str, order_id: str) -> Any:
        self._require_accounts()
        self._require_account(account)
        number = parse_int(order_id, "orderId")
        if number == -1:
            for order in self.orders.values():
                if order.status not in DONE and order.status != "PendingCancel":
                    order.status, order.cancel_seen = "PendingCancel", False
            return {"msg": "Request was submitted", "order_id": -1, "conid": -1, "account": None}
        order = self.orders.get(number)
        if order is None:
            return {"error": f"OrderID {number} doesn't exist"}
        if order.status in DONE:
            return {"error": f"OrderID {number} cannot be cancelled: it is {order.status}"}
        targets = [order] + [o for o in self.orders.values() if o.parent_id == number]
        for target in targets:
            if target.status not in DONE and target.status != "PendingCancel":
                target.status, target.cancel_seen = "PendingCancel", False
        return {
            "msg": "Request was submitted",
            "order_id": number,
            "conid": order.ticket.conid,
            "account": account,
        }
