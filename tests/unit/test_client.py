"""The Python client's own logic, against an httpx.MockTransport: error mapping, pagination,
JobHandle.wait, headers. (The client against the real API is tested through the CLI, in
tests/integration/test_cli.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from engram_client import (
    AsyncEngramClient,
    AuthError,
    ConflictError,
    EngramAPIError,
    EngramClient,
    EngramConnectionError,
    JobTimeoutError,
    NotFoundError,
    ValidationError,
)

URL = "http://engram.test"
NOW = "2025-01-01T00:00:00Z"


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": f"https://engram.dev/problems/{status}", "title": "T", "status": status, "detail": detail,
            "instance": "/x", **extra}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def job(status: str = "queued", completed: int = 0, total: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": "job_1", "kind": "integrate", "status": status, "session": "s", "attempts": 0,
            "progress": {"completed": completed, "total": total}, "result": None, "error": None,
            "cancel_requested": False, "created_at": NOW, "started_at": None, "finished_at": None,
            "links": {"self": "/v1/namespaces/ns/jobs/job_1"}, **extra}


def agent(name: str) -> dict[str, Any]:
    return {"name": name, "description": "", "metadata": {}, "created_at": NOW, "updated_at": NOW}


def session(name: str = "s") -> dict[str, Any]:
    return {"name": name, "description": "", "data": {}, "participants": [], "turn_count": 0, "generation": 1,
            "created_at": NOW, "updated_at": NOW, "deleted_at": None, "expire_time": None}


class Recorder:
    """A MockTransport whose answers come from ``handler``; keeps every request."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **kw: Any) -> EngramClient:
        return EngramClient(URL, transport=httpx.MockTransport(self), **kw)


@pytest.mark.parametrize(("status", "cls"), [
    (404, NotFoundError), (409, ConflictError), (422, ValidationError), (401, AuthError), (403, AuthError),
    (412, EngramAPIError), (503, EngramAPIError),
])
def test_problem_json_maps_to_error_class(status: int, cls: type[EngramAPIError]) -> None:
    rec = Recorder(lambda r: problem(status, "it went wrong", errors=[{"loc": ["body", "x"], "msg": "bad"}]))
    with pytest.raises(cls) as info:
        rec.client().get_agent("ns", "a")
    err = info.value
    assert type(err) is cls
    assert (err.status, err.title, err.detail) == (status, "T", "it went wrong")
    assert err.problem["instance"] == "/x"
    assert err.errors == [{"loc": ["body", "x"], "msg": "bad"}]


def test_error_without_problem_body_keeps_the_text() -> None:
    rec = Recorder(lambda r: httpx.Response(502, text="Bad gateway from the proxy"))
    with pytest.raises(EngramAPIError) as info:
        rec.client().list_namespaces()
    assert info.value.status == 502
    assert info.value.detail == "Bad gateway from the proxy"
    assert info.value.problem == {}


def test_network_error_names_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(EngramConnectionError) as info:
        Recorder(refuse).client().list_namespaces()
    assert URL in str(info.value) and "connection refused" in str(info.value)


def test_iter_follows_next_cursor() -> None:
    pages = {None: (["a", "b"], "c1"), "c1": (["c", "d"], "c2"), "c2": (["e"], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        names, nxt = pages[request.url.params.get("cursor")]
        return httpx.Response(200, json={"items": [agent(n) for n in names], "next_cursor": nxt})

    rec = Recorder(handler)
    assert [a.name for a in rec.client().iter_agents("ns", limit=2)] == ["a", "b", "c", "d", "e"]
    assert [r.url.params.get("cursor") for r in rec.requests] == [None, "c1", "c2"]
    assert {r.url.params["limit"] for r in rec.requests} == {"2"}
    assert {r.url.path for r in rec.requests} == {"/v1/namespaces/ns/agents"}


def test_list_sessions_sends_include_deleted_and_filters_jobs() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"items": [], "next_cursor": None}))
    c = rec.client()
    c.list_sessions("ns", include_deleted=True)
    c.list_sessions("ns")
    c.list_jobs("ns", session="s", kind="integrate", status="queued")
    assert rec.requests[0].url.params["include_deleted"] == "true"
    assert "include_deleted" not in rec.requests[1].url.params
    assert dict(rec.requests[2].url.params) == {"session": "s", "kind": "integrate", "status": "queued"}


def wait_server(states: list[dict[str, Any]]) -> Recorder:
    """POST integrate answers states[0]; each GET of the job answers the next state."""
    it = iter(states)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202 if request.method == "POST" else 200, json=next(it))

    return Recorder(handler)


def test_wait_long_polls_until_finished() -> None:
    rec = wait_server([job("queued"), job("running", 0, 2), job("running", 1, 2),
                       job("succeeded", 2, 2, result={"participants": []})])
    handle = rec.client().integrate("ns", "s")
    final = handle.wait()
    assert final.status == "succeeded" and handle.job is final and handle.done
    gets = [r for r in rec.requests if r.method == "GET"]
    assert len(gets) == 3  # stops at the finished state
    assert all(r.url.path == "/v1/namespaces/ns/jobs/job_1" for r in gets)
    assert [r.url.params["wait"] for r in gets] == ["30", "30", "30"]


def test_wait_reports_every_change_to_on_progress() -> None:
    rec = wait_server([job("queued"), job("running", 0, 2), job("running", 0, 2), job("running", 1, 2),
                       job("succeeded", 2, 2)])
    seen: list[tuple[str, int]] = []
    rec.client().integrate("ns", "s").wait(on_progress=lambda j: seen.append((j.status, j.progress.completed)))
    assert seen == [("queued", 0), ("running", 0), ("running", 1), ("succeeded", 2)]  # the repeat is not reported
    gets = [r for r in rec.requests if r.method == "GET"]
    assert {r.url.params["wait"] for r in gets} == {"2"}  # shorter polls while someone watches


def test_wait_passes_the_requested_poll_and_caps_it_at_30() -> None:
    rec = wait_server([job("queued"), job("running"), job("succeeded")])
    rec.client().integrate("ns", "s").wait(poll=5)
    assert [r.url.params["wait"] for r in rec.requests if r.method == "GET"] == ["5", "5"]
    rec = wait_server([job("queued"), job("succeeded")])
    rec.client().integrate("ns", "s").wait(poll=300)
    assert [r.url.params["wait"] for r in rec.requests if r.method == "GET"] == ["30"]


def test_wait_on_a_finished_job_sends_nothing() -> None:
    rec = wait_server([job("failed", error={"detail": "boom"})])
    handle = rec.client().integrate("ns", "s")
    assert handle.wait().status == "failed"
    assert [r.method for r in rec.requests] == ["POST"]


def test_wait_timeout_raises_with_the_last_state() -> None:
    rec = wait_server([job("queued")])
    with pytest.raises(JobTimeoutError) as info:
        rec.client().integrate("ns", "s").wait(timeout=0)
    assert info.value.job.status == "queued"
    assert isinstance(info.value, TimeoutError)


def test_wait_lowers_the_long_poll_to_the_server_cap() -> None:
    states = iter([job("running"), job("succeeded")])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json=job("queued"))
        if int(request.url.params["wait"]) > 10:
            return problem(422, "invalid", errors=[{"loc": ["query", "wait"], "msg": "must be at most 10"}])
        return httpx.Response(200, json=next(states))

    rec = Recorder(handler)
    assert rec.client().integrate("ns", "s").wait().status == "succeeded"
    assert [r.url.params["wait"] for r in rec.requests if r.method == "GET"] == ["30", "10", "10"]


def test_idempotency_key_header_and_coalesced_job() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/turns"):
            return httpx.Response(201, json={"first_seq": 1, "last_seq": 1, "turns": []})
        return httpx.Response(200, json=job("queued"))  # 200: an integration already queued

    rec = Recorder(handler)
    c = rec.client()
    c.append_turns("ns", "s", [{"speaker": "a", "content": "hi"}], idempotency_key="k-1")
    handle = c.integrate("ns", "s", idempotency_key="k-2")
    c.truncate("ns", "s")
    turns, integ, trunc = rec.requests
    assert turns.headers["Idempotency-Key"] == "k-1"
    assert json.loads(turns.content) == {"turns": [{"speaker": "a", "content": "hi"}]}
    assert integ.headers["Idempotency-Key"] == "k-2" and integ.url.path == "/v1/namespaces/ns/sessions/s/integrate"
    assert "Idempotency-Key" not in trunc.headers and trunc.url.path.endswith("/truncate")
    assert handle.coalesced


def test_key_and_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_URL", "http://from-env:9000/")
    monkeypatch.delenv("ENGRAM_API_KEY", raising=False)
    monkeypatch.setenv("ENGRAM_ADMIN_KEY", "admin-secret")
    rec = Recorder(lambda r: httpx.Response(200, json={"items": [], "next_cursor": None}))
    EngramClient(transport=httpx.MockTransport(rec)).list_namespaces()
    assert str(rec.requests[0].url) == "http://from-env:9000/v1/namespaces"
    assert rec.requests[0].headers["Authorization"] == "Bearer admin-secret"
    monkeypatch.setenv("ENGRAM_API_KEY", "ns-secret")
    EngramClient(transport=httpx.MockTransport(rec)).list_namespaces()
    assert rec.requests[1].headers["Authorization"] == "Bearer ns-secret"
    EngramClient(URL, api_key="arg", transport=httpx.MockTransport(rec)).list_namespaces()
    assert rec.requests[2].headers["Authorization"] == "Bearer arg" and rec.requests[2].url.host == "engram.test"


def test_update_session_sends_merge_patch_with_if_match_and_keeps_the_etag() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json=session(), headers={"ETag": '"v2"'}))
    s = rec.client().update_session("ns", "s", {"data": {"k": None}}, if_match='"v1"')
    req = rec.requests[0]
    assert req.method == "PATCH" and req.headers["If-Match"] == '"v1"'
    assert req.headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(req.content) == {"data": {"k": None}}
    assert s.etag == '"v2"' and "etag" not in s.model_dump()


def test_async_client_same_calls() -> None:
    states = iter([job("queued"), job("running", 1, 2), job("succeeded", 2, 2)])
    pages = {None: (["a"], "c1"), "c1": (["b"], None)}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/agents"):
            names, nxt = pages[request.url.params.get("cursor")]
            return httpx.Response(200, json={"items": [agent(n) for n in names], "next_cursor": nxt})
        if request.url.path.endswith("/missing"):
            return problem(404, "no such agent")
        return httpx.Response(202 if request.method == "POST" else 200, json=next(states))

    rec = Recorder(handler)

    async def main() -> None:
        async with AsyncEngramClient(URL, api_key="k", transport=httpx.MockTransport(rec)) as c:
            assert [a.name async for a in c.iter_agents("ns")] == ["a", "b"]
            with pytest.raises(NotFoundError):
                await c.get_agent("ns", "missing")
            handle = await c.integrate("ns", "s", idempotency_key="k-9")

            async def report(j: Any) -> None:
                seen.append(j.status)

            assert (await handle.wait(on_progress=report)).status == "succeeded"

    asyncio.run(main())
    assert seen == ["queued", "running", "succeeded"]
    posts = [r for r in rec.requests if r.method == "POST"]
    assert posts[0].headers["Idempotency-Key"] == "k-9" and posts[0].headers["Authorization"] == "Bearer k"
    assert [r.url.params["wait"] for r in rec.requests if r.url.path.endswith("/job_1")] == ["2", "2"]


def test_tls_is_verified_for_https_and_not_loaded_for_plain_http() -> None:
    from engram_client import EngramClient

    with EngramClient("https://engram.example") as secure, EngramClient("http://127.0.0.1:9") as plain:
        assert secure.verifies_tls and not plain.verifies_tls
        assert not secure.http.follow_redirects and not plain.http.follow_redirects  # never leaves the base URL
