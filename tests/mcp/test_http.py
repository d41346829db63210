"""Streamable HTTP's guard: a bearer token of engram-mcp's own, and no listening beyond this machine
without one."""

from __future__ import annotations

import subprocess

import anyio
import httpx2

from tests.e2e.conftest import ROOT
from tests.mcp.conftest import ENGRAM_MCP, Engram, http_server, http_session

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_http_answers_only_requests_with_its_token(engram: Engram) -> None:
    with http_server(engram.mcp_env()) as server:
        for auth in ({}, {"Authorization": "Bearer wrong-token-of-some-length"},
                     {"Authorization": f"Basic {server.token}"}, {"Authorization": engram.key}):
            r = httpx2.post(server.url, json=INITIALIZE, headers=HEADERS | auth, timeout=10)
            assert r.status_code == 401, (auth, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer") and "ENGRAM_MCP_TOKEN" in r.text
        ok = httpx2.post(server.url, json=INITIALIZE, headers=HEADERS | {"Authorization": f"Bearer {server.token}"},
                         timeout=10)
        assert ok.status_code == 200, ok.text

        async def scenario() -> list[str]:
            async with http_session(server) as session:
                return [t.name for t in (await session.list_tools()).tools]

        assert len(anyio.run(scenario)) == 8


def test_http_refuses_to_listen_beyond_this_machine_without_a_token(engram: Engram) -> None:
    env = {k: v for k, v in engram.mcp_env().items()} | {"PATH": "/usr/bin:/bin"}
    for host in ("0.0.0.0", "::", "engram.example"):
        proc = subprocess.run([ENGRAM_MCP, "--transport", "http", "--host", host, "--port", "9"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (host, proc.stderr)
        assert "refusing to serve MCP over HTTP" in proc.stderr and "ENGRAM_MCP_TOKEN" in proc.stderr, proc.stderr
    short = subprocess.run([ENGRAM_MCP, "--transport", "http"], env=env | {"ENGRAM_MCP_TOKEN": "short"}, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "too short" in short.stderr
