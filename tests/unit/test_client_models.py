"""The client's models (engram_client.models) against the server's OpenAPI document: the same
fields, the same types, the same required fields, for every body the client reads and the turns it
sends. The client has its own models so that it installs without the server; this test is what
keeps the two from drifting apart."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from engram_client import models as client
from shared.config import Settings

# Server schema (an OpenAPI component) -> the client model that reads (or, for TurnCreate and WebhookPut,
# sends) it.
PAIRS: dict[str, type[BaseModel]] = {
    "NamespaceRead": client.Namespace, "KeyRead": client.Key, "KeyCreated": client.KeyCreated,
    "AgentRead": client.Agent, "MemoryRead": client.Memory, "SessionRead": client.Session,
    "ParticipantRead": client.Participant, "InsightRead": client.Insight, "TurnRead": client.Turn,
    "AppendResult": client.AppendResult, "JobRead": client.Job, "TurnCreate": client.TurnIn,
    "Page_NamespaceRead_": client.Page[client.Namespace], "Page_KeyRead_": client.Page[client.Key],
    "Page_AgentRead_": client.Page[client.Agent], "Page_MemoryRead_": client.Page[client.Memory],
    "Page_SessionRead_": client.Page[client.Session], "Page_ParticipantRead_": client.Page[client.Participant],
    "Page_InsightRead_": client.Page[client.Insight], "Page_TurnRead_": client.Page[client.Turn],
    "Page_JobRead_": client.Page[client.Job],
    "RecalledMemory": client.RecalledMemory, "RecallResult": client.RecallResult, "RedactResult": client.RedactResult,
    "ContextRead": client.Context,
    "WebhookPut": client.WebhookIn, "WebhookRead": client.Webhook, "WebhookCreated": client.WebhookCreated,
    "Page_WebhookRead_": client.Page[client.Webhook], "AttemptRead": client.DeliveryAttempt,
    "DeliveryRead": client.Delivery, "Page_DeliveryRead_": client.Page[client.Delivery],
}
CLIENT_ONLY = {"Session": {"etag"}}  # read from a header, not the body


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    from api.main import create_app

    app = create_app(Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1/0",
                              admin_key="x", webhook_secrets_key="w"))
    return app.openapi()


def shape(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """What a JSON schema says about the data, without titles, descriptions, defaults or limits."""
    if "$ref" in schema:
        return shape(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "enum" in schema:
        return ("enum", tuple(sorted(schema["enum"])))
    if "anyOf" in schema:
        return ("anyOf", tuple(sorted((shape(s, defs) for s in schema["anyOf"]), key=repr)))
    kind = schema.get("type")
    if kind == "array":
        return ("array", shape(schema.get("items", {}), defs))
    if kind == "object" and "properties" in schema:
        skip = CLIENT_ONLY.get(schema.get("title", ""), set())
        fields = {name: shape(sub, defs) for name, sub in schema["properties"].items() if name not in skip}
        return ("object", tuple(sorted(fields.items())), tuple(sorted(set(schema.get("required", [])) - skip)),
                schema.get("additionalProperties", True) is False)
    return (kind, schema.get("format"))


def test_every_body_the_api_answers_has_a_client_model(openapi: dict[str, Any]) -> None:
    answered = {
        content["schema"]["$ref"].rsplit("/", 1)[1]
        for operation in (op for path in openapi["paths"].values() for op in path.values())
        for status, response in operation.get("responses", {}).items() if status.startswith("2")
        for content in response.get("content", {}).values() if "$ref" in content.get("schema", {})
    }
    assert answered, "no response schema found"
    assert answered <= set(PAIRS), f"responses the client has no model for: {sorted(answered - set(PAIRS))}"


@pytest.mark.parametrize("component", sorted(PAIRS))
def test_client_model_matches_the_server_schema(openapi: dict[str, Any], component: str) -> None:
    defs = openapi["components"]["schemas"]
    model = PAIRS[component]
    mine = model.model_json_schema(ref_template="#/$defs/{model}")
    server, own = shape(defs[component], defs), shape(mine, mine.get("$defs", {}))
    assert own == server, f"{model.__name__} differs from the server's {component}:\n{own}\n!=\n{server}"
