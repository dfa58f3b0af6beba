"""Schema-driven fuzzing: whatever a client sends, the API never answers with a 5xx.

Schemathesis reads the app's own OpenAPI schema and builds requests for every
operation from it — ones that fit the schema and ones that break it — which
are sent to the app over ASGI, with the token, against a paper account and a
ledger in a temporary directory. Every answer must be below 500, and every
error a problem+json document without a stack trace. Examples are derived
deterministically, so a failure found in CI repeats on a laptop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = 20


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_request_gets_a_server_error(
    make_client: Callable[..., TestClient], mode: GenerationMode
) -> None:
    client = make_client()
    token = {"Authorization": client.headers["Authorization"]}
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    seen: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers=token)
            text = response.text
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {text[:500]}"
            assert "Traceback" not in text and 'File "' not in text, where
            if response.status_code >= 400:
                kind = response.headers.get("content-type", [""])[0]
                assert kind == "application/problem+json", f"{where}: {kind} {text[:200]}"

        try:
            check()
        except Unsatisfiable:
            # An operation without parameters or body has nothing to break.
            if mode is GenerationMode.POSITIVE:
                raise
    assert "POST /orders/stock" in seen and "POST /decisions/execute" in seen
