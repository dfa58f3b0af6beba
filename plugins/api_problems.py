"""Errors of the REST API as problem details (RFC 9457), and the body size limit.

Every error answer is ``application/problem+json`` with ``type``, ``title``,
``status`` and ``detail``; none ever carries a stack trace. tradepipe errors are
mapped by what the client does next::

    ConfigError, UnknownComponentError   400  fix the request or the settings
    SizingError                          422  the decision cannot be sized
    BrokerRejectedError                  422  the broker refused this order
    BrokerCapabilityError                501  this broker cannot do that
    BrokerAuthError                      503  re-authenticate the broker, retry
    BrokerUnavailableError, BrokerError  503 / 502  retry later
    PersistenceError                     503  the ledger cannot be read or written
    any other exception                  500  a generic message; details in the log

Details pass through the log redaction (secrets, account numbers) first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tradepipe.errors import (
    BrokerAuthError,
    BrokerCapabilityError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
    PersistenceError,
    SizingError,
    TradepipeError,
)
from tradepipe.logs import RedactionFilter, redact_accounts

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
#: Largest request body accepted, in bytes.
MAX_BODY = 64 * 1024
#: Most specific first: the first class an error is an instance of decides.
STATUS: list[tuple[type[TradepipeError], int]] = [
    (BrokerRejectedError, 422),
    (BrokerCapabilityError, 501),
    (BrokerAuthError, 503),
    (BrokerUnavailableError, 503),
    (BrokerError, 502),
    (SizingError, 422),
    (PersistenceError, 503),
    (ConfigError, 400),
]
GENERIC = "an unexpected error occurred; the server log has the details"


def status_of(exc: TradepipeError) -> int:
    """The HTTP status a tradepipe error is answered with (500: not mapped)."""
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem-details response."""
    title = HTTPStatus(status).phrase
    body = {
        "type": f"https://httpstatuses.io/{status}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def field_errors(errors: Iterable[Any]) -> list[dict[str, str]]:
    """Validation errors as ``{"field", "message"}``, never echoing the input."""
    found = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        found.append({"field": ".".join(loc) or "body", "message": str(error.get("msg", ""))})
    return found


def install(app: FastAPI, secrets: Iterable[str] = ()) -> None:
    """Answer every error of ``app`` as problem+json, redacted."""
    redaction = RedactionFilter(secrets)

    def clean(text: str) -> str:
        return redact_accounts(redaction.redact(text))

    def invalid(errors: list[dict[str, str]]) -> JSONResponse:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, clean(detail), errors=errors)

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(field_errors(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model(request: Request, exc: ValidationError) -> JSONResponse:
        return invalid(field_errors(exc.errors(include_url=False, include_input=False)))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, clean(str(exc.detail)), headers=headers)

    @app.exception_handler(TradepipeError)
    async def _tradepipe(request: Request, exc: TradepipeError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return problem(500, GENERIC)
        log.info("%s %s: %s (%s)", request.method, request.url.path, status, exc)
        return problem(status, clean(str(exc)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, GENERIC)


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = problem(413, f"the request body is larger than {self.limit} bytes")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_big(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            # A body without a length (chunked) is counted as it arrives.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, f"the request body is larger than {self.limit} bytes")
            return message

        await self.app(scope, counted, send)
