"""The dashboard page: served at ``/`` by ``tradepipe serve``, written by ``snapshot --html``.

One page (``web/index.html`` with ``web/dashboard.js`` and ``web/dashboard.css``,
shipped in the package) works in two modes:

- ``live``: ``tradepipe serve`` answers ``/`` with the page and the two files
  under ``/assets/``. None of them holds account data, so they need no token;
  the page asks for the token and sends it on every API call. A strict
  Content-Security-Policy allows scripts, styles and requests from the app
  itself only.
- ``snapshot``: ``tradepipe snapshot --html`` writes one self-contained
  ``index.html`` with the script, the styles and the snapshot files inside it,
  which opens from disk with no server and no internet.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from tradepipe.plugins.api.problems import problems

ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
#: Paths that need no token: the page and its two files carry no account data.
OPEN = frozenset({"/", *(f"/assets/{name}" for name in ASSETS)})
#: The page may load and call nothing but the app that served it.
POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
#: The app's SecurityHeaders middleware adds nosniff, no-referrer and no-store.
HEADERS = {"Content-Security-Policy": POLICY}


@cache
def _asset(name: str) -> str:
    return (
        resources.files("tradepipe.plugins.dashboard")
        .joinpath("web", name)
        .read_text(encoding="utf-8")
    )


def _inline(text: str, what: str) -> str:
    # Inside <script> or <style>, "</" could end the element early.
    if "</" in text:
        raise ValueError(f"the dashboard's {what} contains '</' and cannot be inlined")
    return text


def page(mode: Literal["live", "snapshot"], data: Any = None) -> str:
    """The dashboard's HTML: ``live`` links its files; ``snapshot`` holds them and ``data``."""
    if mode == "live":
        styles = '<link rel="stylesheet" href="assets/dashboard.css">'
        script = '<script src="assets/dashboard.js"></script>'
    else:
        styles = f"<style>\n{_inline(_asset('dashboard.css'), 'styles')}</style>"
        script = f"<script>\n{_inline(_asset('dashboard.js'), 'script')}</script>"
    # Inside <script>, "</" would end the element early; \u003c is the same
    # character to the JSON parser.
    embedded = json.dumps(data, indent=1).replace("<", "\\u003c")
    parts = {"__STYLES__": styles, "__SCRIPT__": script, "__MODE__": mode, "__DATA__": embedded}
    # One pass, so a value can never be read as another placeholder.
    return re.sub("|".join(parts), lambda m: parts[m.group(0)], _asset("index.html"))


def mount(app: FastAPI, api: APIRouter, ledger: Any, mask: Any, fresh: Any = None) -> None:
    """Add the page and its files to ``app``, and the activity read the page uses to ``api``.

    :param ledger: a context manager factory yielding the
        :class:`~tradepipe.plugins.ledger.queries.Ledger`, or ``None`` while there is none.
    :param mask: masks the account numbers in an answer.
    :param fresh: ``fresh(key, compute)`` serves a recent answer again (see
        :meth:`~tradepipe.plugins.api.service.Service.fresh`); ``None``: always computed.
    """

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(page("live"), headers=HEADERS)

    @app.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no asset {name!r}")
        return Response(_asset(name), media_type=ASSETS[name], headers=HEADERS)

    @api.get("/ledger/recent", tags=["ledger"], responses=problems(503))
    def recent(
        limit: int = Query(default=50, ge=1, le=500),
    ) -> dict[str, Any]:
        """The latest decisions of any run with their verdicts and orders, and fills.

        What the dashboard's "Recent decisions" and "Fills" panels show; empty
        lists while there is no ledger yet. An answer may be up to a second old.
        """

        def read() -> dict[str, Any]:
            with ledger() as led:
                if led is None:
                    return {"decisions": [], "rejected": [], "fills": []}
                return mask(led.recent(limit))  # type: ignore[no-any-return]

        return read() if fresh is None else fresh(("recent", limit), read)
