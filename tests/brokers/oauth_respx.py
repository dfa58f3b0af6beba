"""IBKR's OAuth side in-process, behind respx: for tests that move the clock with freezegun.

``mock_ibkr(server)`` routes every request to ``BASE`` through ``standin.oauth_server.OAuthServer``
(the LST endpoint, the OAuth 2.0 endpoints, and a signature check on everything else) and
answers the few Web API calls a session needs. ``calls`` records ``(method, path, status)``.
Faults: ``fail_next[path] = [401, 410, …]`` answers those statuses first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx
from standin.oauth_server import OAuthServer, Refused

HOST = "https://api.test"
BASE = f"{HOST}/v1/api"
ACCOUNT = "DU7654321"
HEALTHY = {"authenticated": True, "connected": True, "competing": False}


@dataclass
class FakeIbkr:
    server: OAuthServer
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    fail_next: dict[str, list[int]] = field(default_factory=dict)
    brokerage_open: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        url = str(request.url.copy_with(query=None))
        header = request.headers.get("Authorization")
        try:
            response = self._answer(request, path, url, header)
        except Refused as exc:
            response = httpx.Response(exc.status, json={"error": exc.error})
        self.calls.append((request.method, path.removeprefix("/v1/api"), response.status_code))
        return response

    def _answer(
        self, request: httpx.Request, path: str, url: str, header: str | None
    ) -> httpx.Response:
        s = self.server
        if path == "/v1/api/oauth/live_session_token":
            return httpx.Response(200, json=s.live_session_token(url, header))
        if path == "/oauth2/api/v1/token":
            ctype = request.headers.get("Content-Type")
            return httpx.Response(200, json=s.oauth2_token(request.content, ctype))
        if path == "/gw/api/v1/sso-sessions":
            ctype = request.headers.get("Content-Type")
            return httpx.Response(200, json=s.sso_session(header, request.content, ctype))
        s.check(request.method, url, header)
        api = path.removeprefix("/v1/api")
        pending = self.fail_next.get(api)
        if pending:
            status = pending.pop(0)
            if status in (401, 410):
                s.revoke()
            return httpx.Response(status, json={"error": f"fault {status}"})
        return httpx.Response(200, json=self._api(request.method, api, request))

    def _api(self, method: str, api: str, request: httpx.Request) -> Any:
        if api == "/iserver/auth/ssodh/init":
            body = json.loads(request.content or b"{}")
            assert body.get("publish") is True
            self.brokerage_open = True
        if api in ("/iserver/auth/status", "/iserver/auth/ssodh/init"):
            return {**HEALTHY, "authenticated": self.brokerage_open}
        if api == "/iserver/accounts":
            return {"accounts": [ACCOUNT], "isPaper": True, "selectedAccount": ACCOUNT}
        if api == "/tickle":
            return {"session": "0" * 32, "iserver": {"authStatus": HEALTHY}}
        if api == "/sso/validate":
            return {"RESULT": True, "LOGIN_TYPE": 2}
        if api == "/portfolio/accounts":
            return [{"id": ACCOUNT}]
        if api.endswith("/positions/0"):
            return [{"conid": 265598, "position": 3, "ticker": "AAPL", "avgPrice": 100}]
        if "/positions/" in api:
            return []
        return {}

    def lst_count(self) -> int:
        return sum(1 for method, path, status in self.calls if path == "/oauth/live_session_token")


@contextmanager
def mock_ibkr(server: OAuthServer) -> Iterator[FakeIbkr]:
    fake = FakeIbkr(server)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="api.test").mock(side_effect=fake.handle)
        yield fake
