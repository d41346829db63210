"""``engram-mcp`` against the real system of the end-to-end tests (api, workers, scheduler, Flower), reached
with the MCP SDK's own ``ClientSession``: over stdio (the server is a child process of the session) and over
streamable HTTP (a child ``engram-mcp --transport http`` behind its bearer token)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from shared.embedded import free_port
from tests.e2e import conftest as e2e
from tests.e2e.conftest import ROOT, System

system = e2e.system  # the running system of the end-to-end tests, as a fixture of this package too

ENGRAM_MCP = str(Path(sys.executable).parent / "engram-mcp")  # the console script of the client distribution
TRANSPORTS = ("stdio", "http")
LOGS = ROOT / "test-artifacts" / "mcp-logs"


@dataclass
class Engram:
    """A namespace of the running system, its own key, and the environment engram-mcp gets for them."""

    system: System
    namespace: str
    key: str
    agent: str = "ada"
    env: dict[str, str] = field(default_factory=dict)

    def mcp_env(self, **overrides: str) -> dict[str, str]:
        env = {"ENGRAM_URL": f"http://127.0.0.1:{self.system.api_port}", "ENGRAM_API_KEY": self.key,
               "ENGRAM_MCP_NAMESPACE": self.namespace, "ENGRAM_MCP_AGENT": self.agent, "ENGRAM_MCP_LOG_LEVEL": "INFO"}
        env.update(overrides)
        return {k: v for k, v in env.items() if v}

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """The API as the admin, under this namespace."""
        return self.system.call(method, f"/namespaces/{self.namespace}{path}", **kw)


@pytest.fixture
def engram(system: System) -> Engram:
    """A fresh namespace with a namespace key (not the admin key: what a deployment gives an agent host)."""
    ns = "mcp-" + secrets.token_hex(4)
    system.call("PUT", f"/namespaces/{ns}", json={})
    key = system.call("POST", f"/namespaces/{ns}/keys", json={"description": "engram-mcp tests"})["secret"]
    return Engram(system, ns, key)


@asynccontextmanager
async def stdio_session(env: dict[str, str], log_name: str = "stdio") -> AsyncIterator[ClientSession]:
    """A ``ClientSession`` with a new ``engram-mcp`` on its stdin and stdout (stderr to the test's log)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{log_name}.log", "a") as errlog:
        params = StdioServerParameters(command=ENGRAM_MCP, env=env, cwd=str(ROOT))
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


@dataclass
class HttpServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]


@contextmanager
def http_server(env: dict[str, str], *extra: str, log_name: str = "http") -> Iterator[HttpServer]:
    """``engram-mcp --transport http`` on a free loopback port with a bearer token, until the block ends."""
    port, token = free_port(), secrets.token_hex(16)
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{log_name}.log", "ab") as log:
        process = subprocess.Popen([ENGRAM_MCP, "--transport", "http", "--port", str(port), *extra],
                                   env={**env, "ENGRAM_MCP_TOKEN": token, "PATH": "/usr/bin:/bin"}, cwd=ROOT,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"engram-mcp exited with {process.returncode}: see {LOGS / log_name}.log"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "engram-mcp --transport http did not listen within 30 s"
                time.sleep(0.1)
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", token, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def http_session(server: HttpServer) -> AsyncIterator[ClientSession]:
    """A ``ClientSession`` over streamable HTTP, sending the server's bearer token."""
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {server.token}"},
                                timeout=httpx2.Timeout(30, read=300))
    async with client, streamable_http_client(server.url, http_client=client) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def mcp_session(transport: str, env: dict[str, str]) -> AsyncIterator[ClientSession]:
    """A session with engram-mcp over ``transport`` (``stdio`` or ``http``), configured by ``env``."""
    if transport == "stdio":
        async with stdio_session(env) as session:
            yield session
    else:
        with http_server(env) as server:
            async with http_session(server) as session:
                yield session
