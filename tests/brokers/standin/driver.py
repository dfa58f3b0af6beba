"""The control API from a test's side: one set of methods, wherever the stand-in runs.

:class:`Driver` turns the ``/_standin/*`` calls into methods (``set_auth``, ``questions``,
``fault``, ``fill``...) over one primitive, :meth:`Driver._send`. Its subclasses say how a
control call gets there: :class:`LocalDriver` calls a :class:`Standin` in this process (and
its clients use :class:`~standin.transport.StandinTransport`); the test fixtures' ``Gateway``
posts to a stand-in process over HTTPS. A test written against :class:`Driver` runs on
either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from .clock import VirtualClock
from .gateway import Standin
from .pacing import GATEWAY_RATE
from .state import Behaviour
from .transport import StandinTransport
from .websocket import MemoryConnection, TokenCheck, memory_connect


class Driver:
    """A stand-in under a test's control: where it is, and its control calls."""

    base_url: str  # https://127.0.0.1:<port>/v1/api
    account: str
    port: int

    # -- what a subclass provides ----------------------------------------------------------

    def _send(self, method: str, path: str, raw: bytes) -> tuple[int, str]:
        """Send a control call (``path`` after ``/_standin``); its status and body text."""
        raise NotImplementedError

    def client(self, *, paced: bool = False, **kwargs: Any) -> httpx.Client:
        """A new ``httpx.Client`` on ``base_url`` that reaches the stand-in; close it when done.

        :param paced: space its requests at IBKR's global rate (10/s), so a test's own
            look-ups do not spend the budget of the adapter it drives.
        """
        raise NotImplementedError

    @property
    def verify(self) -> bool | str:
        """What an adapter's ``verify`` setting must be to reach the stand-in."""
        raise NotImplementedError

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` pass on the stand-in's clock (e.g. after a test's own look-ups,
        which spend the same per-second budget as the adapter's requests)."""
        raise NotImplementedError

    def serve_cli(self, monkeypatch: Any) -> None:
        """Make ``tradepipe`` commands run in this process reach the stand-in at its pace."""
        raise NotImplementedError

    # -- the control calls ------------------------------------------------------------------

    def broker_table(self, **extra: Any) -> dict[str, Any]:
        """A ``[brokers.client_portal]`` table (base_url, verify, account_id) for the stand-in."""
        return {
            "base_url": self.base_url,
            "verify": self.verify,
            "account_id": self.account,
            **extra,
        }

    def _post(self, path: str, payload: Any) -> Any:
        status, text = self._send("POST", path, json.dumps(payload).encode())
        if status != 200:
            raise AssertionError(f"control {path} failed: {status} {text}")
        return json.loads(text)

    def _get(self, path: str) -> Any:
        status, text = self._send("GET", path, b"")
        if status != 200:
            raise AssertionError(f"control {path} failed: {status} {text}")
        return json.loads(text)

    def set_auth(self, **state: bool) -> dict[str, Any]:
        """Set ``logged_in``/``authenticated``/``connected``/``competing``; returns the state."""
        result: dict[str, Any] = self._post("/auth", state)
        return result

    def questions(self, message_ids: list[str], *, modify: bool = False) -> None:
        """Ask these questions, in order, on every following placement (and modify if asked)."""
        self._post("/questions", {"message_ids": list(message_ids), "modify": modify})

    def fault(
        self, method: str, path: str, kind: str, *, times: int = 1, after: bool = False
    ) -> None:
        """Fail the next ``times`` ``method path`` requests (path after /v1/api) with ``kind``:
        drop, 500, 503, 429, 401 or timeout; ``after`` processes the request first."""
        self._post(
            "/fault",
            {"method": method, "path": path, "kind": kind, "times": times, "after": after},
        )

    def fill(self, order_id: int | str, quantity: float, price: float) -> dict[str, Any]:
        """Execute ``quantity`` of the order at ``price``; returns execution_id and the order."""
        result: dict[str, Any] = self._post(
            "/fill", {"order_id": int(order_id), "quantity": quantity, "price": price}
        )
        return result

    def order_status(self, order_id: int | str, status: str) -> dict[str, Any]:
        """Force an order's IBKR status (e.g. "Inactive", or "Cancelled" for a rejection)."""
        result: dict[str, Any] = self._post(
            "/order_status", {"order_id": int(order_id), "status": status}
        )
        return result

    def positions(self, positions: list[dict[str, Any]]) -> None:
        """Replace all positions (each needs an int ``conid``; other fields are filled in)."""
        self._post("/positions", {"positions": positions})

    def market(
        self,
        quotes: Mapping[int | str, Mapping[str, Any]] | None = None,
        *,
        closed: bool | None = None,
    ) -> None:
        """Override snapshot fields per conid (None removes one); set the closed flag."""
        payload: dict[str, Any] = {str(k): dict(v) for k, v in (quotes or {}).items()}
        if closed is not None:
            payload["closed"] = closed
        self._post("/market", payload)

    def requests(self) -> list[dict[str, Any]]:
        """Every API request so far: ``{"method","path","query","body"}``, in order."""
        result: list[dict[str, Any]] = self._get("/requests")
        return result

    def orders(self) -> list[dict[str, Any]]:
        """The stand-in's internal order book."""
        result: list[dict[str, Any]] = self._get("/orders")
        return result

    def fill_market_orders(self, price: float | None) -> None:
        """Fill every market order placed from now on at ``price`` at once (``None``: stop)."""
        self._post("/fill_market_orders", {"price": price})

    def ticks(self, *ticks: Mapping[str, Any]) -> None:
        """Trades to come: each ``{"conid", "price", "size", "after"}`` (``after`` seconds from
        now; 0 = at once) moves the last price, last size and day volume the stream sends."""
        self._post("/ticks", {"ticks": [dict(t) for t in ticks]})

    def drop_streams(self) -> int:
        """Hang up every open WebSocket without a close frame; how many there were."""
        result: int = self._post("/stream", {"action": "drop"})["sockets"]
        return result

    def stall_streams(self, *, heartbeats: bool = True) -> int:
        """Stop market data and order updates on every open WebSocket (until it subscribes
        again); with ``heartbeats=False`` stop everything (until it reconnects)."""
        result: int = self._post("/stream", {"action": "stall", "heartbeats": heartbeats})[
            "sockets"
        ]
        return result

    def refuse_streams(self, times: int = 1, status: int = 401) -> None:
        """Refuse the next ``times`` WebSocket handshakes with ``status``."""
        self._post("/stream", {"action": "refuse", "times": times, "status": status})

    def streams(self) -> dict[str, Any]:
        """``{"sockets": [...], "lines": [...], "refusals": [...]}``: the open WebSockets (what
        each received, subscribed, was sent), the conids holding market-data lines."""
        result: dict[str, Any] = self._get("/stream")
        return result

    def behave(self, **changes: Any) -> None:
        """Change quirks from IBKR's defaults (see :class:`~standin.state.Behaviour`)."""
        self._post("/behaviour", changes)

    def violations(self) -> list[dict[str, Any]]:
        """Every pacing violation the stand-in measured: ``{"at","method","path","reason"}``."""
        result: list[dict[str, Any]] = self._get("/pacing")["violations"]
        return result

    def reset(self) -> None:
        """Back to the start state."""
        self._post("/reset", {})


class LocalDriver(Driver):
    """A :class:`Standin` in this process, on a virtual clock (a new one unless given).

    Its clients reach the stand-in through :class:`StandinTransport`; ``base_url`` names
    ``127.0.0.1:<port>`` only so URLs and messages look like a gateway's: nothing listens
    there and nothing connects to it.
    """

    def __init__(
        self,
        account: str,
        *,
        behaviour: dict[str, Any] | None = None,
        clock: VirtualClock | None = None,
        port: int = 5000,
    ) -> None:
        self.clock = clock or VirtualClock()
        quirks = Behaviour()
        quirks.update(behaviour or {})
        self.standin = Standin(account, quirks, clock=self.clock)
        self.transport = StandinTransport(self.standin)
        self.account = account
        self.port = port
        self.base_url = f"https://127.0.0.1:{port}/v1/api"
        self._clients: list[httpx.Client] = []
        #: How an OAuth stand-in checks a WebSocket's token (``None``: the gateway's cookie).
        self.token_check: TokenCheck | None = None

    def ws_connect(self, url: str, headers: Mapping[str, str]) -> MemoryConnection:
        """Open a WebSocket to this stand-in as ``websockets``' ``connect`` would (an
        in-memory connection on the virtual clock); raises ``InvalidStatus`` if refused."""
        return memory_connect(self.standin, url, headers, token_check=self.token_check)

    def pause(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def _send(self, method: str, path: str, raw: bytes) -> tuple[int, str]:
        answer = self.standin.control(method, path, raw)
        return answer.status, answer.body.decode()

    @property
    def verify(self) -> bool | str:
        return True  # never used: no TLS in this process

    def client(self, *, paced: bool = False, **kwargs: Any) -> httpx.Client:
        """A new ``httpx.Client`` on ``base_url`` through the transport; closed by :meth:`close`.

        :param paced: move the clock on by a tenth of a second (and a hair) before each
            request, as a client keeping IBKR's 10 requests/s would: a test's own look-ups
            then do not spend the budget of the adapter it drives.
        """
        kwargs.setdefault("timeout", 10.0)
        if paced:
            step = 1.0 / GATEWAY_RATE + 0.01
            kwargs.setdefault("event_hooks", {"request": [lambda _: self.clock.advance(step)]})
        client = httpx.Client(base_url=self.base_url, transport=self.transport, **kwargs)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client made by :meth:`client`."""
        while self._clients:
            self._clients.pop().close()
