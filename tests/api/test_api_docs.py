"""``/docs`` works offline: Swagger UI's files come from the app, never from a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tradepipe.plugins.api.app import create_app
from tradepipe.plugins.api.docs import ASSETS
from tradepipe.plugins.api.problems import PROBLEM, PROBLEM_REF, Problem
from tradepipe.testing import settings, test_host

TOKEN = "docs-token-0123456789abcdef"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings(), test_host(), TOKEN)) as c:
        yield c


def test_the_docs_page_loads_nothing_from_outside(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert re.findall(r"(?:https?:)?//[\w.-]+", page.text) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == [
        f"{ASSETS}/favicon.png",
        f"{ASSETS}/swagger-ui-bundle.js",
        f"{ASSETS}/swagger-ui.css",
    ]
    assert "'/openapi.json'" in page.text
    assert '"validatorUrl": null' in page.text


def test_its_files_are_served_without_the_token(client: TestClient) -> None:
    script = client.get(f"{ASSETS}/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text
    # The schema is OpenAPI 3.1, which Swagger UI reads from version 5 on.
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1.")
    assert "^3\\.1\\." in script.text
    assert client.get(f"{ASSETS}/swagger-ui.css").status_code == 200
    assert client.get(f"{ASSETS}/favicon.png").headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "path",
    [f"{ASSETS}/nothing.js", f"{ASSETS}/%2e%2e/%2e%2e/account", f"{ASSETS}/..%2f..%2faccount"],
)
def test_nothing_else_is_open_below_the_docs_files(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert "summary" not in answer.text


def test_the_schema_describes_every_answer(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            status = next(code for code in operation["responses"] if code.startswith("2"))
            answer = operation["responses"][status]["content"]["application/json"]["schema"]
            assert "$ref" in answer or "type" in answer, f"{method.upper()} {path}"
    described = schema["components"]["schemas"]
    assert set(described["HaltState"]["properties"]) == {"halted", "manual", "daily"}
    assert set(described["EquityPoint"]["properties"]) == {"ts", "equity", "cash", "run_id"}


def test_the_schema_says_every_error_is_a_problem_document(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    described = schema["components"]["schemas"]
    assert set(described["Problem"]["required"]) == {"type", "title", "status", "detail"}
    # FastAPI's own 422 shape is never answered, so it is not described.
    assert "HTTPValidationError" not in described
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            answers = operation["responses"]
            errors = {code: a for code, a in answers.items() if code[0] in "45"}
            for code, answer in errors.items():
                assert answer["content"] == {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}, (
                    f"{where} {code}"
                )
            assert ("401" in errors) == bool(operation.get("security")), where
            assert ("413" in errors) == ("requestBody" in operation), where
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in errors, where
            assert "500" in errors, where
    broker = schema["paths"]["/account"]["get"]["responses"]
    assert {"400", "502", "503"} <= set(broker)
    assert {"404", "503"} <= set(schema["paths"]["/ledger/orders"]["get"]["responses"])
    assert "404" in schema["paths"]["/positions/{symbol}"]["get"]["responses"]


def test_an_answer_fits_the_problem_it_is_documented_as(client: TestClient) -> None:
    answer = client.get("/ledger/orders", params={"limit": 0}, headers={"Authorization": "x"})
    assert answer.status_code == 401
    Problem.model_validate(answer.json())
    token = {"Authorization": f"Bearer {TOKEN}"}
    invalid = client.get("/ledger/orders", params={"limit": 0}, headers=token)
    assert invalid.status_code == 422
    assert Problem.model_validate(invalid.json()).errors[0].field == "limit"
