"""Integration fixtures: the FastAPI app in-process over HTTP (TestClient) on the real
PostgreSQL and Redis of the run. Every test works in namespaces of its own, so tests never
see each other's data and need no cleanup."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY, make_settings

INTEGRATION_REDIS_DB = 1  # the e2e workers consume db 2: they never run these tests' jobs


@pytest.fixture(scope="session")
def settings(services):
    return make_settings(services, INTEGRATION_REDIS_DB)


@pytest.fixture(scope="session")
def app(settings):
    from api.main import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def http(app) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def ns(http: TestClient) -> str:
    name = unique("ns")
    assert http.put(f"/v1/namespaces/{name}", json={}).status_code == 201
    return name


class World:
    """A namespace with agents and a session, and short helpers to act on them."""

    def __init__(self, http: TestClient, ns: str) -> None:
        self.http, self.ns = http, ns
        self.base = f"/v1/namespaces/{ns}"

    def agent(self, name: str, description: str = "") -> str:
        r = self.http.put(f"{self.base}/agents/{name}", json={"description": description})
        assert r.status_code in (200, 201), r.text
        return name

    def session(self, name: str | None = None, **body) -> str:
        r = self.http.post(f"{self.base}/sessions", json={"name": name or unique("s"), **body})
        assert r.status_code == 201, r.text
        return r.json()["name"]

    def bind(self, session: str, agent: str) -> None:
        r = self.http.put(f"{self.base}/sessions/{session}/participants/{agent}")
        assert r.status_code in (200, 201), r.text

    def turns(self, session: str, *turns: dict, headers: dict | None = None):
        return self.http.post(f"{self.base}/sessions/{session}/turns", json={"turns": list(turns)}, headers=headers)

    def say(self, session: str, speaker: str, content: str, **extra) -> int:
        r = self.turns(session, {"speaker": speaker, "content": content, **extra})
        assert r.status_code == 201, r.text
        return r.json()["first_seq"]

    def get(self, path: str, **kw):
        return self.http.get(self.base + path, **kw)

    def post(self, path: str, **kw):
        return self.http.post(self.base + path, **kw)


@pytest.fixture
def world(http: TestClient, ns: str) -> World:
    return World(http, ns)
