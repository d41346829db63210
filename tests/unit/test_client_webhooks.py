"""The Python client's webhooks: its endpoint calls against an httpx.MockTransport, and ``verify``
against requests signed as the server signs them (standardwebhooks' ``Webhook.sign``)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Signer

from engram_client import (
    AsyncEngramClient,
    Delivery,
    DeliveryStatus,
    EngramClient,
    Webhook,
    WebhookCreated,
    WebhookEvent,
    WebhookVerificationError,
    verify,
)

URL = "http://engram.test"
NOW = "2025-01-01T00:00:00Z"


def secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def hook(name: str = "ci", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": "https://example.com/hook", "events": ["job.succeeded", "job.failed"],
            "description": "", "created_at": NOW, "updated_at": NOW, **extra}


def delivery() -> dict[str, Any]:
    return {"id": "msg_1", "event": "job.failed", "job_id": "job_1", "status": "pending",
            "next_attempt_at": NOW, "created_at": NOW, "finished_at": None,
            "attempts": [{"attempt": 1, "started_at": NOW, "duration_ms": 12, "status_code": 503,
                          "error": "the receiver answered 503"}]}


def signed(key: str, body: str, at: datetime | None = None, msg_id: str = "msg_2b3c") -> dict[str, str]:
    """The headers the server sends with ``body`` (shared/webhooks/secrets.py::signed_headers)."""
    at = at or datetime.now(UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Signer(key).sign(msg_id, at, body), "content-type": "application/json"}


BODY = json.dumps({"type": "job.succeeded", "timestamp": "2025-01-01T00:00:01+00:00",
                   "data": {"id": "job_1", "kind": "integrate", "status": "succeeded"}}, separators=(",", ":"))


# --- verify ------------------------------------------------------------------------------------

def test_verify_returns_the_payload_of_a_signed_request() -> None:
    key = secret()
    headers = signed(key, BODY)
    assert verify(headers, BODY.encode(), key) == json.loads(BODY)
    assert verify(headers, BODY, key)["type"] == "job.succeeded"  # str bodies too
    # Header names in any case, as frameworks hand them over.
    assert verify({k.title(): v for k, v in headers.items()}, BODY.encode(), key)["data"]["id"] == "job_1"


def test_verify_refuses_a_tampered_body() -> None:
    key = secret()
    headers = signed(key, BODY)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(headers, BODY.replace("succeeded", "failed").encode(), key)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):  # re-serialized JSON
        verify(headers, json.dumps(json.loads(BODY)).encode(), key)


def test_verify_refuses_another_secret() -> None:
    with pytest.raises(WebhookVerificationError, match="secret is not this endpoint's"):
        verify(signed(secret(), BODY), BODY.encode(), secret())


def test_verify_refuses_an_old_or_future_timestamp() -> None:
    key = secret()
    old = signed(key, BODY, at=datetime.now(UTC) - timedelta(minutes=10))  # correctly signed, but replayed late
    with pytest.raises(WebhookVerificationError, match="more than 300 s old"):
        verify(old, BODY.encode(), key)
    future = signed(key, BODY, at=datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="in the future"):
        verify(future, BODY.encode(), key)
    recent = signed(key, BODY, at=datetime.now(UTC) - timedelta(minutes=4))
    assert verify(recent, BODY.encode(), key)["type"] == "job.succeeded"


@pytest.mark.parametrize(("change", "message"), [
    ({"webhook-signature": None}, "header is missing"),
    ({"webhook-id": None}, "header is missing"),
    ({"webhook-timestamp": "yesterday"}, "not a Unix time"),
    ({"webhook-signature": "garbage"}, "malformed"),
    ({"webhook-signature": "v1,not base64!"}, "malformed"),
    # The shapes are checked by verify itself, whatever the standardwebhooks release says of them.
    ({"webhook-id": ""}, "webhook-id header is missing"),
    ({"webhook-id": None, "webhook-timestamp": None}, "webhook-id and webhook-timestamp headers are missing"),
    ({"webhook-timestamp": "1735689600.5"}, "not a Unix time"),
    ({"webhook-timestamp": "１７３５６８９６００"}, "not a Unix time"),  # digits, but not ASCII ones
    ({"webhook-signature": "v1," + base64.b64encode(b"x" * 16).decode()}, "16 bytes, not the 32"),
    ({"webhook-signature": "v2," + base64.b64encode(b"x" * 32).decode()}, "is not `v1,<base64>`"),
    ({"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode() + " v1,"}, "signature 2 of 2 is not `v1,<base64>`"),
    ({"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode().rstrip("=")}, "not valid base64"),
    ({"webhook-signature": "v1," + base64.urlsafe_b64encode(b"\xff" * 32).decode()}, "not valid base64"),
])
def test_verify_refuses_missing_or_malformed_headers(change: dict[str, str | None], message: str) -> None:
    key = secret()
    headers: dict[str, str] = {**signed(key, BODY)}
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(WebhookVerificationError, match=message):
        verify(headers, BODY.encode(), key)


def test_verify_does_not_rely_on_the_library_s_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only standardwebhooks' signing is used: its verify (whose errors changed wording between releases)
    # is never called, so every outcome above is verify's own.
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("standardwebhooks' Webhook.verify was called")

    monkeypatch.setattr(Signer, "verify", refuse)
    key = secret()
    assert verify(signed(key, BODY), BODY.encode(), key)["type"] == "job.succeeded"
    with pytest.raises(WebhookVerificationError, match="malformed"):
        verify({**signed(key, BODY), "webhook-signature": "garbage"}, BODY.encode(), key)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(signed(secret(), BODY), BODY.encode(), key)


def test_verify_accepts_any_of_several_signatures() -> None:
    # Standard Webhooks allows several space-separated signatures (e.g. while a secret is rotated).
    key = secret()
    headers = signed(key, BODY)
    headers["webhook-signature"] = signed(secret(), BODY)["webhook-signature"] + " " + headers["webhook-signature"]
    assert verify(headers, BODY.encode(), key)["type"] == "job.succeeded"


def test_verify_refuses_a_signed_body_that_is_not_a_json_object() -> None:
    key = secret()
    for body in ("[1, 2]", "not json"):
        with pytest.raises(WebhookVerificationError, match="not a JSON object"):
            verify(signed(key, body), body.encode(), key)


def test_verify_says_when_the_secret_is_not_a_webhook_secret() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        verify(signed(secret(), BODY), BODY.encode(), "whsec_")
    with pytest.raises(ValueError, match="whsec_"):
        verify(signed(secret(), BODY), BODY.encode(), "whsec_not*base64")


def test_verify_reads_http_server_headers() -> None:
    from email.message import Message

    key = secret()
    message = Message()  # what http.server's BaseHTTPRequestHandler.headers is
    for name, value in signed(key, BODY).items():
        message[name] = value
    assert verify(message, BODY.encode(), key)["data"]["status"] == "succeeded"


# --- endpoint calls ----------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/deliveries"):
            cursor = request.url.params.get("cursor")
            return httpx.Response(200, json={"items": [delivery()], "next_cursor": None if cursor else "c1"})
        if request.method == "PUT":
            body = json.loads(request.content)
            created = path.endswith("/new")
            answer = hook(path.rsplit("/", 1)[1], url=body["url"], events=body["events"],
                          description=body["description"])
            return httpx.Response(201 if created else 200, json={**answer, "secret": "whsec_x"} if created else answer)
        if request.method == "DELETE":
            return httpx.Response(204)
        if path.endswith("/webhooks"):
            return httpx.Response(200, json={"items": [hook("a"), hook("b")], "next_cursor": None})
        return httpx.Response(200, json=hook(path.rsplit("/", 1)[1]))


def test_put_webhook_created_carries_the_secret_and_an_update_does_not() -> None:
    rec = Recorder()
    with EngramClient(URL, transport=httpx.MockTransport(rec)) as c:
        created = c.put_webhook("ns", "new", "https://example.com/hook",
                                [WebhookEvent.JOB_SUCCEEDED, "job.failed"], description="ci")
        assert isinstance(created, WebhookCreated) and created.secret == "whsec_x"
        updated = c.put_webhook("ns", "old", "https://example.com/other", "job.cancelled")
        assert type(updated) is Webhook and updated.events == [WebhookEvent.JOB_CANCELLED]
    first, second = rec.requests
    assert (first.method, first.url.path) == ("PUT", "/v1/namespaces/ns/webhooks/new")
    assert json.loads(first.content) == {"url": "https://example.com/hook", "events": ["job.succeeded", "job.failed"],
                                         "description": "ci"}
    assert json.loads(second.content)["events"] == ["job.cancelled"]  # one event given alone


def test_webhook_list_get_delete_and_deliveries() -> None:
    rec = Recorder()
    with EngramClient(URL, transport=httpx.MockTransport(rec)) as c:
        assert [w.name for w in c.iter_webhooks("ns")] == ["a", "b"]
        assert c.get_webhook("ns", "a").url == "https://example.com/hook"
        c.delete_webhook("ns", "a")
        page = c.list_deliveries("ns", "a", limit=1)
        d = page.items[0]
        assert isinstance(d, Delivery) and d.status is DeliveryStatus.PENDING and d.event is WebhookEvent.JOB_FAILED
        assert (d.attempts[0].status_code, d.attempts[0].error) == (503, "the receiver answered 503")
        assert len(list(c.iter_deliveries("ns", "a"))) == 2
    assert [(r.method, r.url.path) for r in rec.requests[:4]] == [
        ("GET", "/v1/namespaces/ns/webhooks"), ("GET", "/v1/namespaces/ns/webhooks/a"),
        ("DELETE", "/v1/namespaces/ns/webhooks/a"), ("GET", "/v1/namespaces/ns/webhooks/a/deliveries")]
    assert rec.requests[3].url.params["limit"] == "1"


def test_async_client_webhook_calls() -> None:
    rec = Recorder()

    async def main() -> None:
        async with AsyncEngramClient(URL, transport=httpx.MockTransport(rec)) as c:
            created = await c.put_webhook("ns", "new", "https://example.com/hook", ["job.succeeded"])
            assert isinstance(created, WebhookCreated)
            assert [w.name async for w in c.iter_webhooks("ns")] == ["a", "b"]
            assert (await c.get_webhook("ns", "a")).name == "a"
            assert [d.id async for d in c.iter_deliveries("ns", "a")] == ["msg_1", "msg_1"]
            await c.delete_webhook("ns", "a")

    asyncio.run(main())
    assert rec.requests[-1].method == "DELETE"
