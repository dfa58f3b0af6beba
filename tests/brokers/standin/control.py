"""The control API under ``/_standin`` (tests only): never recorded, never faulted.

Each call drives one capability: auth (session), questions, fault, fill and order_status
(executions), positions (portfolio), market, ticks and stream (the WebSocket, ``stream.py``),
reset, and the requests and orders reads.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from .pacing import GatewayPacing
from .session import SessionMixin
from .state import Fault
from .stream import StreamMixin
from .wire import Answer, ApiError, fail, json_answer

FAULT_KINDS = {"drop", "500", "503", "429", "401", "timeout"}


class ControlMixin(SessionMixin, StreamMixin):
    """The control calls; they drive the capabilities they name."""

    def control(self, method: str, path: str, raw: bytes) -> Answer:
        with self.lock:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return json_answer({"error": "body is not valid JSON"}, 400)
            try:
                return json_answer(self._control(method, path, body))
            except ApiError as exc:
                return json_answer(exc.payload, exc.status)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                return json_answer({"error": f"stand-in internal error: {exc!r}"}, 500)

    def _control(self, method: str, path: str, body: Any) -> Any:
        if method == "GET" and path == "/requests":
            return list(self.log)
        if method == "GET" and path == "/orders":
            return [o.internal() for o in self.orders.values()]
        if method == "GET" and path == "/pacing":
            return {
                "violations": [
                    {"at": at, "method": m, "path": p, "reason": r}
                    for at, m, p, r in self.pacing.violations
                ],
                "penalty_until": self.pacing.penalty_until,
            }
        if method == "GET" and path == "/stream":
            return self.stream_info()
        if method != "POST":
            fail(f"unknown control call {method} {path}", 404)
        if path == "/reset":
            self._reset()
            return {"ok": True}
        if not isinstance(body, dict):
            fail("body must be a JSON object")
        if path == "/auth":
            return self.set_auth(body)
        if path == "/behaviour":
            self.behaviour.update(body)
            self.pacing = GatewayPacing(self.behaviour.rate, self.behaviour.penalty_seconds)
            if "cold_order_lists" in body:
                self.cold_order_reads = self.behaviour.cold_order_lists
            return {"ok": True}
        if path == "/questions":
            ids = body.get("message_ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                fail('body must be {"message_ids": [...]}')
            self.question_ids = list(ids)
            self.question_on_modify = bool(body.get("modify", False))
            return {"ok": True}
        if path == "/fault":
            return self._arm_fault(body)
        if path == "/fill":
            return self.fill(body)
        if path == "/fill_market_orders":
            price = body.get("price")
            if price is not None and not isinstance(price, int | float):
                fail('body must be {"price": <number or null>}')
            self.fill_market_at = None if price is None else float(price)
            return {"ok": True}
        if path == "/order_status":
            return self.force_status(body)
        if path == "/positions":
            return self.seed_positions(body.get("positions"))
        if path == "/market":
            return self._set_market(body)
        if path == "/ticks":
            return self.set_ticks(body)
        if path == "/stream":
            return self.stream_control(body)
        fail(f"unknown control call {method} {path}", 404)

    def _arm_fault(self, body: dict[str, Any]) -> Any:
        kind = str(body.get("kind"))
        path = body.get("path")
        method = str(body.get("method", "*")).upper()
        times = body.get("times", 1)
        if kind not in FAULT_KINDS:
            fail(f"kind must be one of {sorted(FAULT_KINDS)}")
        if not isinstance(path, str) or not path.startswith("/"):
            fail("path must be the path after /v1/api, starting with '/'")
        if not isinstance(times, int) or times < 1:
            fail("times must be a positive integer")
        self.faults.append(Fault(method, path, kind, times, bool(body.get("after", False))))
        return {"ok": True}
