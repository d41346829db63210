"""OpenAIIntegrator against a real local HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.integrators.base import ChatTurn, InsightDraft, IntegratorError, Reflection
from shared.integrators.openai import OpenAIIntegrator

API_KEY = "sk-test-not-a-real-key"
TURNS = [
    ChatTurn(10, "user", "Our invoices must include the new German tax change from January."),
    ChatTurn(11, "assistant", "Noted: German tax change on invoices from January."),
    ChatTurn(12, "user", "Also, I prefer replies in English."),
]
REFLECTION = Reflection(agent="billing-bot", agent_description="Answers billing questions.", turns=TURNS)


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message content (a JSON string, usually)
    body: str | None = None  # raw body, instead of a chat completion
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLLM:
    """A scripted chat-completions server: each request pops the next Reply."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Recorded] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                fake.requests.append(
                    Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw))
                )
                if self.path != "/v1/chat/completions":
                    self._send(Reply(status=404, body='{"error": "not found"}'))
                    return
                reply = fake.replies.pop(0) if fake.replies else Reply(status=500, body="script exhausted")
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.body is not None:
                    payload = reply.body.encode()
                else:
                    payload = json.dumps(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": "test-model",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": reply.content},
                                    "finish_reason": "stop",
                                }
                            ],
                        }
                    ).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.close()


def _integrator(base_url: str, max_retries: int = 3) -> OpenAIIntegrator:
    return OpenAIIntegrator(
        base_url=base_url,
        model="test-model",
        api_key=API_KEY,
        timeout=5.0,
        max_retries=max_retries,
        backoff_base=0.01,
    )


def _answer(*insights: dict[str, Any]) -> str:
    return json.dumps({"insights": list(insights)})


GOOD = _answer(
    {"content": "Invoices must apply the German tax change from January.", "importance": 8, "evidence": [10, 11]},
    {"content": "  The user prefers English replies.  ", "importance": 4, "evidence": [12]},
)


def test_success_parses_insights_and_sends_a_proper_request(llm: FakeLLM) -> None:
    llm.replies.append(Reply(content=GOOD))
    with _integrator(llm.base_url) as integrator:
        insights = integrator.reflect(REFLECTION)

    assert insights == [
        InsightDraft("Invoices must apply the German tax change from January.", 8, [10, 11]),
        InsightDraft("The user prefers English replies.", 4, [12]),
    ]
    assert len(llm.requests) == 1
    request = llm.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0
    assert request.body["response_format"] == {"type": "json_object"}
    messages = request.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "insights" in messages[0]["content"] and "importance" in messages[0]["content"]
    user = messages[1]["content"]
    assert "billing-bot" in user and "Answers billing questions." in user
    assert "[10] user: Our invoices must include the new German tax change from January." in user
    assert "[12] user: Also, I prefer replies in English." in user


def test_fenced_json_is_accepted(llm: FakeLLM) -> None:
    llm.replies.append(Reply(content=f"```json\n{GOOD}\n```"))
    with _integrator(llm.base_url) as integrator:
        assert len(integrator.reflect(REFLECTION)) == 2


def test_empty_turns_do_not_call_the_endpoint(llm: FakeLLM) -> None:
    with _integrator(llm.base_url) as integrator:
        assert integrator.reflect(Reflection("a", "", [])) == []
        assert integrator.reflect(Reflection("a", "", [ChatTurn(1, "user", "   ")])) == []
    assert llm.requests == []


def test_retries_after_500_then_succeeds(llm: FakeLLM) -> None:
    llm.replies += [Reply(status=500, body='{"error": "boom"}'), Reply(content=GOOD)]
    with _integrator(llm.base_url) as integrator:
        assert len(integrator.reflect(REFLECTION)) == 2
    assert len(llm.requests) == 2


def test_retries_after_429_with_retry_after(llm: FakeLLM) -> None:
    llm.replies += [
        Reply(status=429, body='{"error": "slow down"}', headers={"Retry-After": "0"}),
        Reply(content=GOOD),
    ]
    started = time.monotonic()
    with _integrator(llm.base_url) as integrator:
        assert len(integrator.reflect(REFLECTION)) == 2
    assert len(llm.requests) == 2
    assert time.monotonic() - started < 2.0


def test_exhausted_retries_are_retryable(llm: FakeLLM) -> None:
    llm.replies += [Reply(status=503, body="unavailable") for _ in range(3)]
    with _integrator(llm.base_url, max_retries=2) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)

    assert info.value.retryable is True
    assert len(llm.requests) == 3  # the first try plus two retries
    message = str(info.value)
    assert f"{llm.base_url}/chat/completions" in message and "503" in message
    assert API_KEY not in message


def test_malformed_json_is_not_retryable(llm: FakeLLM) -> None:
    llm.replies.append(Reply(content="Sure! Here are the insights: the user likes tax."))
    with _integrator(llm.base_url) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)
    assert info.value.retryable is False
    assert "not valid JSON insights" in str(info.value)
    assert len(llm.requests) == 1


def test_evidence_citing_unknown_seq_is_rejected(llm: FakeLLM) -> None:
    llm.replies.append(Reply(content=_answer({"content": "Something.", "importance": 5, "evidence": [10, 99]})))
    with _integrator(llm.base_url) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)
    assert info.value.retryable is False
    assert "insights[0].evidence" in str(info.value) and "99" in str(info.value)


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ({"content": "x", "importance": 11, "evidence": [10]}, "insights[0].importance"),
        ({"content": "x", "importance": 0, "evidence": [10]}, "insights[0].importance"),
        ({"content": "x", "importance": True, "evidence": [10]}, "insights[0].importance"),
        ({"content": "x", "importance": 7.5, "evidence": [10]}, "insights[0].importance"),
        ({"content": "x", "importance": "7", "evidence": [10]}, "insights[0].importance"),
        ({"content": "   ", "importance": 5, "evidence": [10]}, "insights[0].content"),
        ({"content": "x" * 2001, "importance": 5, "evidence": [10]}, "insights[0].content"),
        ({"content": 5, "importance": 5, "evidence": [10]}, "insights[0].content"),
        ({"content": "x", "importance": 5, "evidence": ["10"]}, "insights[0].evidence[0]"),
        ({"content": "x", "importance": 5}, "insights[0].evidence"),
    ],
)
def test_invalid_items_are_rejected(llm: FakeLLM, item: dict[str, Any], where: str) -> None:
    llm.replies.append(Reply(content=_answer(item)))
    with _integrator(llm.base_url) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)
    assert info.value.retryable is False
    assert "not valid JSON insights" in str(info.value)
    assert where in str(info.value)


@pytest.mark.parametrize("content", ['{"memories": []}', '[{"content": "x"}]', '{"insights": {"a": 1}}'])
def test_wrong_shape_is_rejected(llm: FakeLLM, content: str) -> None:
    llm.replies.append(Reply(content=content))
    with _integrator(llm.base_url) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)
    assert info.value.retryable is False


def test_integral_float_importance_and_empty_list_are_accepted(llm: FakeLLM) -> None:
    llm.replies += [
        Reply(content=_answer({"content": "x", "importance": 7.0, "evidence": [12, 12]})),
        Reply(content='{"insights": []}'),
    ]
    with _integrator(llm.base_url) as integrator:
        assert integrator.reflect(REFLECTION) == [InsightDraft("x", 7, [12])]
        assert integrator.reflect(REFLECTION) == []


def test_400_is_not_retried(llm: FakeLLM) -> None:
    llm.replies.append(Reply(status=400, body='{"error": {"message": "model not found"}}'))
    with _integrator(llm.base_url) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)
    assert info.value.retryable is False
    assert "400" in str(info.value) and "model not found" in str(info.value)
    assert len(llm.requests) == 1


def test_connection_refused_is_retryable() -> None:
    # A port that was just free: bind, note it, close; nothing listens there now.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    with _integrator(base_url, max_retries=2) as integrator, pytest.raises(IntegratorError) as info:
        integrator.reflect(REFLECTION)
    assert info.value.retryable is True
    message = str(info.value)
    assert f"{base_url}/chat/completions" in message and "3 attempt" in message
    assert "ConnectError" in message
    assert API_KEY not in message


def test_retry_after_is_honoured_up_to_the_cap(llm: FakeLLM) -> None:
    llm.replies += [
        Reply(status=429, body="{}", headers={"Retry-After": "0.3"}),
        Reply(status=503, body="{}", headers={"Retry-After": "100"}),  # capped below
        Reply(content=GOOD),
    ]
    integrator = OpenAIIntegrator(
        llm.base_url, "test-model", API_KEY, timeout=5.0, max_retries=3, backoff_base=0.01, retry_after_cap=0.2
    )
    started = time.monotonic()
    with integrator:
        assert len(integrator.reflect(REFLECTION)) == 2
    elapsed = time.monotonic() - started
    assert len(llm.requests) == 3
    assert 0.4 <= elapsed < 3.0  # min(0.3, 0.2) + min(100, 0.2), not 100 s
