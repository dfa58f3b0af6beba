"""Errors of the REST API as problem details (RFC 9457), and the body size limit.

Every error answer is ``application/problem+json`` with ``type``, ``title``,
``status`` and ``detail``; none ever carries a stack trace. tradepipe errors are
mapped by what the client does next::

    ConfigError, UnknownComponentError   400  fix the request or the settings
    SizingError                          422  the decision cannot be sized
    InvalidOrderError                    422  the order breaks an order rule; fix it
    BrokerRejectedError                  422  the broker refused this order
    BrokerCapabilityError                501  this broker cannot do that
    BrokerAuthError                      503  re-authenticate the broker, retry
    BrokerUnavailableError, BrokerError  503 / 502  retry later
    PersistenceError                     503  the ledger cannot be read or written
    any other exception                  500  a generic message; details in the log

Details pass through the log redaction (secrets, account numbers) first.
The schema says the same: every error answer it lists is a :class:`Problem`
in ``application/problem+json`` (:func:`install` rewrites FastAPI's own 422),
with 401 on every operation that needs the token and 413 on every one with a
body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tradepipe.errors import (
    BrokerAuthError,
    BrokerCapabilityError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
    InvalidOrderError,
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
    (InvalidOrderError, 422),
    (PersistenceError, 503),
    (ConfigError, 400),
]
GENERIC = "an unexpected error occurred; the server log has the details"
#: Where the schema keeps :class:`Problem`.
PROBLEM_REF = "#/components/schemas/Problem"


class FieldError(BaseModel):
    """One invalid field of a request, without the value sent."""

    field: str = Field(description="Dotted path of the field; `body` for the body as a whole.")
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details): every 4xx and 5xx is one."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="A URL naming the kind of problem (its HTTP status).")
    title: str = Field(description="The status's reason phrase.")
    status: int
    detail: str = Field(description="What went wrong; secrets and account numbers masked.")
    errors: list[FieldError] = Field(
        default_factory=list, description="422 for an invalid request only: each field's error."
    )


#: What an error status means here, for the schema.
MEANING = {
    400: "The request or the settings are wrong (a live account without `[run] allow_live`).",
    404: "No such record, or no ledger yet.",
    422: "Not valid (`errors` names each field), or refused: breaks an order rule (whole "
    "shares, a live expiry), cannot be sized, or the broker said no.",
    501: "The broker cannot do that.",
    502: "The broker failed.",
    503: "The broker or the ledger cannot be used now (logged out, unreachable); retry later.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer ``statuses`` (a :class:`Problem` each)."""
    return {s: {"description": MEANING.get(s, HTTPStatus(s).phrase)} for s in statuses}


#: A call that connects the broker (401, 413, 422 and 500 each operation gets as it has them).
BROKER_ERRORS = problems(400, 502, 503)
#: A call that places, previews or cancels an order.
ORDER_ERRORS = problems(400, 422, 501, 502, 503)
#: A call that reads the ledger.
LEDGER_ERRORS = problems(404, 503)


def _problem_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's) with every error answer a :class:`Problem`, as they are."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    model = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(model.pop("$defs", {}))
    components["Problem"] = model
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            if operation.get("security"):
                answers["401"] = {
                    "description": "No bearer token, or the wrong one.",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                }
            if "requestBody" in operation:
                answers["413"] = {"description": f"The body is larger than {MAX_BODY} bytes."}
            if answers.get("422", {}).get("description") == "Validation Error":
                answers["422"]["description"] = "Not valid: `errors` names each field."
            answers.setdefault("500", {"description": "Unexpected; the server log has why."})
            for status, answer in answers.items():
                if status[0] in "45":
                    answer["content"] = {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}
    # FastAPI's own 422 shape, which no answer has.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


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
    """Answer every error of ``app`` as problem+json, redacted, and say so in its schema."""
    redaction = RedactionFilter(secrets)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_schema(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

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
