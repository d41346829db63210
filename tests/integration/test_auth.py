"""Authentication and tenant isolation (DESIGN.md section 4)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.kit.db import unit_of_work
from tests.integration import sql
from tests.integration.conftest import World, unique

PUBLIC = {"/healthz", "/readyz", "/metrics"}


@pytest.fixture
def anon(app) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def key_for(http: TestClient, ns: str) -> dict:
    r = http.post(f"/v1/namespaces/{ns}/keys", json={"description": "test"})
    assert r.status_code == 201, r.text
    return r.json()


def test_missing_key_is_401(anon: TestClient) -> None:
    r = anon.get("/v1/namespaces")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(anon: TestClient) -> None:
    r = anon.get("/v1/namespaces", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert anon.get("/v1/namespaces", headers={"Authorization": "Basic abc"}).status_code == 401


def test_key_secret_is_shown_once_and_stored_hashed(http: TestClient, ns: str, settings) -> None:
    created = key_for(http, ns)
    assert created["secret"].startswith("eng_") and len(created["secret"]) > 40
    listed = http.get(f"/v1/namespaces/{ns}/keys").json()["items"]
    assert [k["id"] for k in listed] == [created["id"]] and "secret" not in listed[0]
    with unit_of_work(settings) as db:
        stored = sql.value(db, "SELECT secret_hash FROM api_keys WHERE id = %(id)s", {"id": created["id"]})
    assert stored != created["secret"] and created["secret"] not in stored


def test_namespace_key_reaches_its_namespace(app, http: TestClient, ns: str) -> None:
    secret = key_for(http, ns)["secret"]
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.put(f"/v1/namespaces/{ns}/agents/ada", json={}).status_code == 201
        assert c.post(f"/v1/namespaces/{ns}/sessions", json={"name": "s1"}).status_code == 201
        assert [n["name"] for n in c.get("/v1/namespaces").json()["items"]] == [ns]


def test_revoked_key_is_401_at_once(app, http: TestClient, ns: str) -> None:
    created = key_for(http, ns)
    assert http.delete(f"/v1/namespaces/{ns}/keys/{created['id']}").status_code == 204
    with TestClient(app, headers={"Authorization": f"Bearer {created['secret']}"}) as c:
        assert c.get(f"/v1/namespaces/{ns}").status_code == 401


def test_namespace_key_cannot_manage_namespaces_or_keys(app, http: TestClient, ns: str) -> None:
    secret = key_for(http, ns)["secret"]
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.post(f"/v1/namespaces/{ns}/keys", json={}).status_code == 403
        assert c.get(f"/v1/namespaces/{ns}/keys").status_code == 403
        assert c.put(f"/v1/namespaces/{unique('other')}", json={}).status_code == 403


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


BODIES = {
    ("post", "/v1/namespaces/{namespace}/sessions/{session}/turns"): {"turns": [{"speaker": "x", "content": "y"}]},
    ("patch", "/v1/namespaces/{namespace}/sessions/{session}"): {"description": "x"},
    ("post", "/v1/namespaces/{namespace}/sessions"): {"name": "probe"},
    ("post", "/v1/namespaces/{namespace}/agents/{agent}/recall"): {"query": "secret plans"},
}


def _routes(app) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            out.append((method, path))
    return out


@pytest.fixture
def victim(http: TestClient, ns: str) -> dict[str, str]:
    """Namespace A with one of everything, to aim at with namespace B's key."""
    w = World(http, ns)
    w.agent("ada")
    session = w.session()
    w.bind(session, "ada")
    w.say(session, "user", "secret plans")
    job = w.post(f"/sessions/{session}/integrate").json()["id"]
    key = key_for(http, ns)["id"]
    hook = w.http.put(f"{w.base}/webhooks/alerts", json={"url": "https://93.184.215.14/hooks", "events": ["job.failed"]})
    assert hook.status_code == 201, hook.text
    return {"namespace": ns, "session": session, "agent": "ada", "participant": "ada", "job": job, "key_id": key,
            "seq": "1", "memory": "1", "webhook": "alerts"}


def test_every_route_with_another_namespaces_key_answers_as_if_nothing_existed(app, http, victim) -> None:
    other = unique("ns")
    assert http.put(f"/v1/namespaces/{other}", json={}).status_code == 201
    secret = key_for(http, other)["secret"]
    ghost = {k: v for k, v in victim.items()} | {"namespace": unique("ghost")}
    walked = 0
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as intruder:
        for method, path in _routes(app):
            if path in PUBLIC or path == "/v1/namespaces":
                continue
            body = BODIES.get((method, path), {})
            real = intruder.request(method.upper(), _fill(path, victim), json=body)
            absent = intruder.request(method.upper(), _fill(path, ghost), json=body)
            assert real.status_code in (401, 403, 404), f"{method.upper()} {path} -> {real.status_code} {real.text}"
            assert real.status_code == absent.status_code, f"{method.upper()} {path} tells existing from absent"
            scrub = lambda r, n: r.text.replace(n, "NS")  # noqa: E731
            assert scrub(real, victim["namespace"]) == scrub(absent, ghost["namespace"]), f"{method.upper()} {path}"
            walked += 1
    assert walked >= 25
    # And nothing was changed in namespace A.
    w = World(http, victim["namespace"])
    assert w.get(f"/sessions/{victim['session']}").json()["turn_count"] == 1
    assert w.get(f"/sessions/{victim['session']}/turns").json()["items"][0]["content"] == "secret plans"
    assert [j["id"] for j in w.get("/jobs").json()["items"]] == [victim["job"]]


def test_every_route_without_a_key_answers_401(app, victim) -> None:
    walked = 0
    with TestClient(app) as anon:
        for method, path in _routes(app):
            if path in PUBLIC:
                continue
            r = anon.request(method.upper(), _fill(path, victim), json=BODIES.get((method, path), {}))
            assert r.status_code == 401, f"{method.upper()} {path} -> {r.status_code}"
            walked += 1
    assert walked >= 26


def test_public_ops_endpoints_need_no_key(anon: TestClient) -> None:
    assert anon.get("/healthz").status_code == 200
    assert anon.get("/readyz").status_code == 200
    assert anon.get("/metrics").status_code == 200
