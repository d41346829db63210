"""Schemathesis against the app's own OpenAPI document: no 5xx, and every response conforms to
the schema it documents. Examples are bounded so the suite stays fast; generation is
derandomized so a failure reproduces."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import ADMIN_KEY


def _operations() -> list[tuple[str, str]]:
    # Built offline (create_app connects to nothing) only to list the operations at collection time.
    from api.main import create_app
    from shared.config import Settings

    app = create_app(Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1/0",
                              admin_key="x"))
    return [(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops]


@pytest.fixture(scope="module")
def api_schema(app):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(("method", "path"), _operations())
def test_api_conforms_to_its_openapi_document(api_schema, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:  # type: ignore[no-untyped-def]
        if case.query and "wait" in case.query:
            case.query["wait"] = 0  # a long-poll only makes the fuzzing slow
        case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                               checks=[not_a_server_error, response_schema_conformance, content_type_conformance])

    run()
