"""The stand-in gateway: the capabilities composed, routing, the gates, faults, the request log.

:class:`Standin` is what the HTTPS server (``server.py``) and the in-process transport hand
each request to: :meth:`Standin.receive` records it and picks an armed fault,
:meth:`Standin.api` answers it, :meth:`Standin.control` answers a control call.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from .clock import Clock
from .contracts import ContractsMixin
from .control import ControlMixin
from .orders import OrdersMixin
from .state import Behaviour, Fault
from .wire import Answer, ApiError, Request, Route, fail, json_answer, text_answer

NO_BRIDGE = {"error": "Bad Request: no bridge", "statusCode": 400}


class Standin(ControlMixin, OrdersMixin, ContractsMixin):
    """In-memory gateway. Every public entry point takes ``self.lock``."""

    def __init__(
        self, account: str, behaviour: Behaviour | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(account, behaviour, clock)
        self.routes = self._routes()
        self._local = threading.local()

    # ----- entry points used by the HTTP handler -------------------------------------------

    def receive(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Fault | None:
        """Record an API request; return the fault to apply to it, if one is armed."""
        with self.lock:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            now = self.clock.monotonic()
            entry: dict[str, Any] = {
                "method": method,
                "path": path,
                "query": query,
                "body": body,
                "at": now,
                "status": None,
            }
            self.log.append(entry)
            self._local.entry = entry
            if self.behaviour.pacing:
                refused = self.pacing.arrive(method, path, now)
                if refused is not None:
                    entry["status"] = 429
                    return Fault(method, path, "429", 1, False, reason=refused.reason)
            self._wake(now)
            for fault in self.faults:
                if fault.path == path and fault.method in (method, "*"):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    entry["status"] = fault.kind
                    return fault
            return None

    def api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Answer:
        with self.lock:
            try:
                answer = self._api(method, path, query, raw)
            except ApiError as exc:
                answer = json_answer(exc.payload, exc.status)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                answer = json_answer({"error": f"stand-in internal error: {exc!r}"}, 500)
            entry = getattr(self._local, "entry", None)
            if entry is not None and entry["status"] is None:
                entry["status"] = answer.status
            return answer

    def _api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Answer:
        pending = self.pending
        if pending is not None and (method, path) != ("POST", f"/iserver/reply/{pending.reply_id}"):
            self.pending = None  # any other request makes the pending reply id unknown
        if method == "POST" and not raw:
            return json_answer({"error": "Length Required"}, 411)
        if not self.logged_in and (method, path) != ("POST", "/iserver/auth/status"):
            return text_answer("access denied", 401)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            fail("Bad Request: body is not valid JSON")
        route, groups = self._match(method, path)
        if route.gate == "brokerage" and not self.brokerage_ok:
            if self.idle_dropped:
                # An idle brokerage session was closed; the SSO session lives on.
                return text_answer("access denied", 401)
            return json_answer(NO_BRIDGE, 400)
        result = route.handler(Request(method, path, query, body), *groups)
        return result if isinstance(result, Answer) else json_answer(result)

    def _match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        path_known = False
        for route in self.routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groups()
            path_known = True
        if path_known:
            fail(f"Method {method} not allowed", 405)
        fail(f"Not found: {path}", 404)

    def _routes(self) -> list[Route]:
        acct = r"/([^/]+)"
        table: list[tuple[str, str, Callable[..., Any], str]] = [
            ("POST", "/iserver/auth/status", self.auth_status, "none"),
            ("POST", "/iserver/auth/ssodh/init", self.ssodh_init, "sso"),
            ("POST", "/iserver/reauthenticate", self.reauthenticate, "sso"),
            ("POST", "/tickle", self.tickle, "sso"),
            ("GET", "/tickle", self.tickle, "sso"),
            ("GET", "/sso/validate", self.sso_validate, "sso"),
            ("POST", "/logout", self.logout, "sso"),
            ("GET", "/iserver/accounts", self.iserver_accounts, "brokerage"),
            ("GET", "/portfolio/accounts", self.portfolio_accounts, "sso"),
            ("GET", f"/portfolio{acct}/summary", self.portfolio_summary, "sso"),
            ("GET", f"/portfolio{acct}/ledger", self.portfolio_ledger, "sso"),
            ("GET", f"/portfolio{acct}/positions/([^/]+)", self.positions_page, "sso"),
            ("GET", f"/portfolio{acct}/position/([^/]+)", self.position_by_conid, "sso"),
            ("POST", f"/portfolio{acct}/positions/invalidate", self.positions_invalidate, "sso"),
            ("GET", "/trsrv/stocks", self.trsrv_stocks, "sso"),
            ("GET", "/iserver/secdef/search", self.secdef_search, "brokerage"),
            ("POST", "/iserver/secdef/search", self.secdef_search, "brokerage"),
            ("GET", "/iserver/secdef/strikes", self.secdef_strikes, "brokerage"),
            ("GET", "/iserver/secdef/info", self.secdef_info, "brokerage"),
            ("POST", f"/iserver/account{acct}/orders", self.place_orders, "brokerage"),
            ("POST", f"/iserver/account{acct}/orders/whatif", self.whatif, "brokerage"),
            ("POST", r"/iserver/reply/([^/]+)", self.reply, "brokerage"),
            ("POST", "/iserver/questions/suppress", self.suppress, "brokerage"),
            ("POST", "/iserver/questions/suppress/reset", self.suppress_reset, "brokerage"),
            ("GET", "/iserver/account/orders", self.live_orders, "brokerage"),
            ("GET", r"/iserver/account/order/status/([^/]+)", self.order_status, "brokerage"),
            ("POST", f"/iserver/account{acct}/order/([^/]+)", self.modify_order, "brokerage"),
            ("DELETE", f"/iserver/account{acct}/order/([^/]+)", self.cancel_order, "brokerage"),
            ("GET", "/iserver/account/trades", self.trades_list, "brokerage"),
            ("GET", "/iserver/marketdata/snapshot", self.snapshot, "brokerage"),
            ("POST", "/iserver/marketdata/unsubscribe", self.unsubscribe, "brokerage"),
            ("GET", "/iserver/marketdata/unsubscribeall", self.unsubscribe_all, "brokerage"),
            ("GET", "/iserver/marketdata/history", self.history, "brokerage"),
            ("GET", "/iserver/scanner/params", self.scanner_params, "brokerage"),
            ("POST", "/iserver/scanner/run", self.scanner_run, "brokerage"),
        ]
        return [Route(m, re.compile(p), h, g) for m, p, h, g in table]
