"""Schemathesis against the app's own OpenAPI document, with every check it has: no 5xx, every
status, header, content type and body is the one documented, bad input is refused and good input
accepted, Allow names what a path serves, auth is never ignored. Each operation is fuzzed with
valid and invalid data, then the stateful phase chains operations through the links it infers
(create, then read, patch, delete what was created). Examples are bounded so the suite stays
fast; generation is derandomized so a failure reproduces."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
BOUNDED = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))


def _operations() -> list[tuple[str, str]]:
    # Built offline (create_app connects to nothing) only to list the operations at collection time.
    from api.main import create_app
    from shared.config import Settings

    app = create_app(Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1/0",
                              admin_key="x", webhook_secrets_key="w"))
    return [(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops]


def _no_long_poll(case: Any) -> None:
    if case.query and "wait" in case.query:
        case.query["wait"] = 0  # a long-poll only makes the fuzzing slow


def _no_made_up_cursor(case: Any) -> None:
    # A cursor is opaque: only one a list returned is valid, so a generated one, however well
    # formed, is rightly refused (422). Invalid cursors are still sent in the negative phase.
    if case.query:
        case.query.pop("cursor", None)


def _no_made_up_etag(case: Any) -> None:
    # An ETag is opaque too: only one the API gave matches, so a generated If-Match is rightly
    # answered 412. Invalid ones are still sent in the negative phase.
    if case.headers:
        case.headers.pop("If-Match", None)


def _public_webhook_url(case: Any) -> None:
    # Whether a URL's host resolves to a public address is for DNS to say, not a schema: a
    # generated host ("0", "localhost", an unknown name) is rightly refused (422). Invalid URLs are
    # still sent in the negative phase.
    if case.path.endswith("/webhooks/{webhook}") and case.method == "PUT" and isinstance(case.body, dict) \
            and isinstance(case.body.get("url"), str):
        case.body["url"] = "https://93.184.215.14/hooks"


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), _operations())
def test_api_conforms_to_its_openapi_document(api_schema, method: str, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    if mode is GenerationMode.NEGATIVE and not (operation.path_parameters or operation.query or operation.headers
                                                or operation.body):
        return  # nothing it takes can be invalid

    @given(case=operation.as_strategy(generation_mode=mode))
    @BOUNDED
    def run(case) -> None:
        _no_long_poll(case)
        if mode is GenerationMode.POSITIVE:
            _no_made_up_cursor(case)
            _no_made_up_etag(case)
            _public_webhook_url(case)
        case.call_and_validate(headers=AUTH)

    run()


def test_api_conforms_to_its_openapi_document_across_calls(api_schema) -> None:
    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]  # a class built at run time
        def before_call(self, case) -> None:
            _no_long_poll(case)
            _no_made_up_cursor(case)
            _no_made_up_etag(case)
            _public_webhook_url(case)

        def get_call_kwargs(self, case) -> dict[str, Any]:
            return {"headers": AUTH}

        def validate_response(self, response, case, additional_checks=None, **kwargs: Any) -> None:
            # Every check, but "valid data is accepted": along a chain, whether a body is valid depends
            # on what earlier calls left (turns whose visible_to names agents not bound to the session,
            # a made-up name a link sent to another resource), which no schema can say. The
            # single-operation runs above keep that check on fresh state.
            case.validate_response(response, additional_checks=additional_checks, excluded_checks=[
                positive_data_acceptance], transport_kwargs=kwargs or None, recorder=self.recorder)

    Machine.run(settings=settings(BOUNDED, max_examples=60, stateful_step_count=8))
