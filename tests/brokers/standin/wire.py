"""What every endpoint shares: the request as parsed, the answer to send, refusals, parsing.

An endpoint raises :class:`ApiError` (usually through :func:`fail`) to answer with a status and
a JSON payload; :class:`Answer` is what goes on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

API_PREFIX = "/v1/api"
CONTROL_PREFIX = "/_standin"


class ApiError(Exception):
    """Raised inside a handler: answer with this status and payload."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(payload)
        self.status = status
        self.payload = payload


def fail(message: str, status: int = 400) -> NoReturn:
    raise ApiError(status, {"error": message})


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_answer(payload: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload).encode())


def text_answer(text: str, status: int) -> Answer:
    return Answer(status, text.encode(), "text/plain; charset=utf-8")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_bool(text: str | None) -> bool:
    return (text or "").strip().lower() in {"true", "1", "yes"}


def parse_int(text: Any, what: str) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        fail(f"{what} must be an integer")


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]
    gate: str  # "none" (always), "sso" (logged in), "brokerage" (logged in + brokerage)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
