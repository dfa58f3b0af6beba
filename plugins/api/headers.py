"""Headers every answer of the REST API carries, whatever route or error made it.

Answers hold account data, so no cache keeps them (``Cache-Control:
no-store``), except the docs page's public files below ``/docs/assets/``. No
answer is sniffed into another type (a JSON answer echoing a symbol is never
read as HTML), framed by another page, or sent on as a referrer. A route's
own value of one of these headers wins (the dashboard's are the same).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Sent with every answer that does not set its own.
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
NO_STORE = "no-store"


class SecurityHeaders:
    """ASGI middleware adding :data:`ALWAYS`, and ``no-store`` outside ``cacheable``."""

    def __init__(self, app: ASGIApp, cacheable: tuple[str, ...] = ()) -> None:
        self.app = app
        self.cacheable = cacheable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        store = bool(self.cacheable) and scope.get("path", "").startswith(self.cacheable)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if not store:
                    headers.setdefault("Cache-Control", NO_STORE)
            await send(message)

        await self.app(scope, receive, send_with_headers)
