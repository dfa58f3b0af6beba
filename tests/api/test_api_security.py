"""The API's guards: the token on every route, body limits, validation, CORS, problem+json."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from starlette.websockets import WebSocketDisconnect
from tradepipe import errors
from tradepipe.plugins.api.app import OPEN_PATHS, create_app
from tradepipe.plugins.api.docs import ASSETS
from tradepipe.plugins.api.problems import GENERIC, MAX_BODY, STATUS, Problem, status_of
from tradepipe.testing import settings, test_host

TOKEN = "security-token-0123456789"
APP = create_app(settings(), test_host(), TOKEN)
SAMPLE = {
    "symbol": "AAPL",
    "client_order_id": "tp-1",
    "key": "ai-1",
    "sweep_id": "sw-0a1b",
    "approval_id": "ap-0a1b",
}


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation in the app's own schema (the routes, however they are mounted)."""
    found = []
    for template, operations in app.openapi()["paths"].items():
        path = re.sub(r"{(\w+)}", lambda m: SAMPLE[m.group(1)], template)
        found.extend((method.upper(), path) for method in sorted(operations))
    return found


ROUTES = _routes(APP)
PROTECTED = [(m, p) for m, p in ROUTES if p not in OPEN_PATHS]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(APP, raise_server_exceptions=False) as c:
        yield c


def assert_problem(answer: Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = answer.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    Problem.model_validate(body)  # as the schema says
    return body


def test_every_route_is_listed() -> None:
    assert {p for _m, p in PROTECTED} == {
        "/broker/status",
        "/broker/connect",
        "/broker/disconnect",
        "/account",
        "/positions",
        "/positions/AAPL",
        "/orders",
        "/orders/stock",
        "/orders/options",
        "/decisions/execute",
        "/orders/tp-1",
        "/ledger/orders",
        "/ledger/fills",
        "/ledger/decisions",
        "/ledger/recent",
        "/explain/ai-1",
        "/halt",
        "/resume",
        "/equity",
        "/tax/lots",
        "/tax/report",
        "/report",
        "/sweeps/sw-0a1b",
        "/approvals",
        "/approvals/ap-0a1b",
        "/snapshots",
        "/status",
    }
    assert [p for _m, p in ROUTES if p in OPEN_PATHS] == ["/health"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
def test_a_protected_route_needs_the_token(
    client: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = client.request(method, path, headers=headers, json={})
    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("name", ["token", "access_token", "authorization", "bearer"])
def test_a_token_in_the_query_string_is_not_accepted(client: TestClient, name: str) -> None:
    # It would land in any access log; only the header counts.
    assert_problem(client.get(f"/account?{name}={TOKEN}"), 401)


def test_a_websocket_without_the_token_is_closed_before_it_opens(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/positions"):
        pass
    assert closed.value.code == 1008


@pytest.mark.slow
def test_every_answer_is_kept_from_caches_sniffing_and_frames(
    client: TestClient, make_client: Callable[..., TestClient]
) -> None:
    with make_client() as signed_in:
        answers = [
            signed_in.get("/account"),
            signed_in.get("/nowhere"),
            signed_in.post("/halt", content=b"x" * (MAX_BODY + 1)),
            client.get("/account"),
            client.get("/health"),
            client.get("/openapi.json"),
            client.get("/docs"),
            client.get("/"),
        ]
    assert [a.status_code for a in answers] == [200, 404, 413, 401, 200, 200, 200, 200]
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path}"
        assert answer.headers["cache-control"] == "no-store", where
        assert answer.headers["x-content-type-options"] == "nosniff", where
        assert answer.headers["x-frame-options"] == "DENY", where
        assert answer.headers["referrer-policy"] == "no-referrer", where
    # The docs page's files are public and the same for everyone: they may be cached.
    script = client.get(f"{ASSETS}/swagger-ui-bundle.js")
    assert "cache-control" not in script.headers
    assert script.headers["x-content-type-options"] == "nosniff"


def test_health_schema_and_docs_are_open(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/orders/stock" in schema["paths"]
    assert "text/html" in client.get("/docs").headers["content-type"]


def test_an_unknown_path_is_401_without_the_token_and_404_with_it(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 401)
    assert_problem(client.get("/nowhere", headers={"Authorization": f"Bearer {TOKEN}"}), 404)


AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"symbol": "AAPL", "side": "buy", "quantity": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbol": "AAPL", "quantity": 1}, "side"),
        ({**GOOD, "quantity": -1}, "quantity"),
        ({**GOOD, "quantity": "lots"}, "quantity"),
        ({**GOOD, "side": "hold"}, "side"),
        ({**GOOD, "symbol": "AAPL; DROP TABLE"}, "symbol"),
        ({**GOOD, "order_type": "iceberg"}, "order_type"),
        ({**GOOD, "wait": 3600}, "wait"),
        ({**GOOD, "account": "U1234567"}, "account"),
    ],
)
def test_a_bad_order_body_is_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    answer = client.post("/orders/stock", json=body, headers=AUTH)
    problem = assert_problem(answer, 422)
    assert field in str(problem["detail"])
    assert "U1234567" not in answer.text


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    answer = client.post(
        "/orders/stock",
        content=b"{not json",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert_problem(answer, 422)


def test_bad_query_parameters_are_422(client: TestClient) -> None:
    problem = assert_problem(client.get("/ledger/orders?limit=0", headers=AUTH), 422)
    assert "limit" in str(problem["detail"])


def test_an_oversized_body_is_413(client: TestClient) -> None:
    big = {"reason": "x" * (MAX_BODY + 1)}
    assert_problem(client.post("/halt", json=big, headers=AUTH), 413)


def test_an_oversized_streamed_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"reason": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    answer = client.post(
        "/halt", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert_problem(answer, 413)


def test_cors_is_closed(client: TestClient) -> None:
    preflight = client.options(
        "/orders/stock",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_every_tradepipe_error_has_a_deliberate_status() -> None:
    mapped = {cls for cls, _ in STATUS}
    for name in dir(errors):
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.TradepipeError):
            if cls is errors.TradepipeError:
                continue
            status = status_of(cls.__new__(cls))
            assert status in (400, 422, 500, 501, 502, 503), cls
            if status == 500:
                # Only errors that mean a bug here are answered generically.
                assert cls in (
                    errors.PluginError,
                    errors.StrategyError,
                    errors.InvalidOrderTransition,
                    errors.FeedError,
                    errors.LotError,
                ), cls
    assert errors.ConfigError in mapped


@pytest.mark.slow
@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.ConfigError("bad key for account U1234567"), 400),
        (errors.UnknownComponentError("broker", "x", ["paper"]), 400),
        (errors.BrokerRejectedError("no shorting"), 422),
        (errors.SizingError("no price"), 422),
        (errors.BrokerCapabilityError("no preview"), 501),
        (errors.BrokerAuthError("log in again"), 503),
        (errors.BrokerUnavailableError("gateway down"), 503),
        (errors.PersistenceError("ledger locked"), 503),
        (errors.InvalidOrderTransition("secret internals"), 500),
        (RuntimeError("secret internals"), 500),
        (KeyError("secret internals"), 500),
    ],
)
def test_errors_are_mapped_without_a_stack_trace(exc: Exception, status: int) -> None:
    app = create_app(settings(), test_host(), TOKEN)

    def boom() -> None:
        raise exc

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom", headers=AUTH)
    problem = assert_problem(answer, status)
    if status == 500:
        assert problem["detail"] == GENERIC
        assert "secret internals" not in answer.text
    else:
        assert problem["detail"] == str(exc).replace("U1234567", "U***4567")
    assert "U1234567" not in answer.text


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        create_app(settings(), test_host(), "short")
