"""The session endpoints: auth status, ssodh/init, reauthenticate, tickle, sso/validate, logout.

Also ``set_auth``, the control call that logs in or out and breaks the brokerage session.
"""

from __future__ import annotations

import uuid
from typing import Any

from .state import State
from .wire import Request, fail

SERVER_INFO = {"serverName": "StandIn01", "serverVersion": "Build 10.25.0p, stand-in"}
MAC = "02:00:00:00:00:01"


class SessionMixin(State):
    """Session endpoints."""

    def _auth_payload(self) -> dict[str, Any]:
        return {
            "authenticated": self.logged_in and self.authenticated,
            "competing": self.logged_in and self.competing,
            "connected": self.logged_in and self.connected,
            "message": "",
            "MAC": MAC,
            "serverInfo": dict(SERVER_INFO),
            "hardware_info": "00000000|" + MAC,
            "fail": "",
        }

    def auth_status(self, req: Request) -> Any:
        return self._auth_payload()

    def ssodh_init(self, req: Request) -> Any:
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("publish") is not True:
            fail("publish must be true", 500)
        compete = body.get("compete") is True
        self.connected = True
        if self.competing and not compete:
            return self._auth_payload()  # the other login keeps the brokerage session
        self.competing = False
        self._open_brokerage()
        return self._auth_payload()

    def _open_brokerage(self) -> None:
        """IBKR answers at once and brings the brokerage session up ``init_seconds`` later."""
        delay = self.behaviour.init_seconds
        if delay <= 0:
            self.authenticated = True
            self.init_at = None
            self._relogin()
            return
        self.authenticated = False
        self.init_at = self.clock.monotonic() + delay

    def reauthenticate(self, req: Request) -> Any:
        if not self.competing:
            self.connected = True
            self._open_brokerage()
        return {"message": "triggered"}

    def tickle(self, req: Request) -> Any:
        return {
            "session": self.session,
            "ssoExpires": max(0, self.login_ms + 24 * 3600 * 1000 - self.clock.now_ms()),
            "collission": False,
            "userId": 12345678,
            "hmds": {"error": "no bridge"},
            "iserver": {"authStatus": self._auth_payload()},
        }

    def sso_validate(self, req: Request) -> Any:
        user = "standinpaper" if self.is_paper else "standinlive"
        return {
            "USER_ID": 12345678,
            "USER_NAME": user,
            "RESULT": True,
            "AUTH_TIME": self.login_ms,
            "SF_ENABLED": False,
            "IS_FREE_TRIAL": False,
            "CREDENTIAL": user,
            "IP": "127.0.0.1",
            "EXPIRES": max(0, self.login_ms + 24 * 3600 * 1000 - self.clock.now_ms()),
            "QUALIFIED_FOR_MOBILE_AUTH": None,
            "LANDING_APP": "UNIVERSAL",
            "IS_MASTER": False,
            "lastAccessed": self.clock.now_ms(),
            "LOGIN_TYPE": 2 if self.is_paper else 1,
            "PAPER_USER_NAME": user,
            "features": {
                "env": "PROD",
                "wlms": True,
                "realtime": True,
                "bond": True,
                "optionChains": True,
                "calendar": True,
                "newMf": True,
            },
            "region": "NJ",
        }

    def logout(self, req: Request) -> Any:
        self.logged_in = self.authenticated = self.connected = self.competing = False
        self.init_at = None
        self._relogin()
        return {"status": True}

    def set_auth(self, changes: dict[str, Any]) -> dict[str, Any]:
        allowed = {"logged_in", "authenticated", "connected", "competing"}
        unknown = set(changes) - allowed
        if unknown or not all(isinstance(v, bool) for v in changes.values()):
            fail(f"auth takes booleans among {sorted(allowed)}")
        was_brokerage = self.logged_in and self.authenticated
        if "logged_in" in changes and changes["logged_in"] != self.logged_in:
            if changes["logged_in"]:  # a fresh browser login opens the brokerage session too
                self.logged_in = self.authenticated = self.connected = True
                self.competing = False
                self.init_at = None
                self.session = uuid.uuid4().hex
                self.login_ms = self.clock.now_ms()
            else:
                self.logged_in = self.authenticated = self.connected = self.competing = False
            self._relogin()
        for key in ("authenticated", "connected", "competing"):
            if key in changes:
                setattr(self, key, changes[key])
        if not was_brokerage and self.logged_in and self.authenticated:
            self._relogin()
        return {**self._auth_payload(), "logged_in": self.logged_in}
