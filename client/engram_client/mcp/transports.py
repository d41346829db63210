"""The two ways ``engram-mcp`` talks to a host: stdio, and streamable HTTP behind a bearer token."""

from __future__ import annotations

import hmac
import json
import sys

import anyio
from mcp.server import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from engram_client.mcp.settings import McpSettings
from engram_client.mcp.tools import Engram


class BearerToken:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``, else 401.

    The token is the MCP server's own (``ENGRAM_MCP_TOKEN``), not Engram's API key: a remote agent that
    may use the memory tools does not get the key itself.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            body = json.dumps({"error": "unauthorized",
                               "error_description": "send Authorization: Bearer <ENGRAM_MCP_TOKEN>"}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="engram-mcp"')]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        return hmac.compare_digest(given, self.expected)


def run_stdio(server: MCPServer[Engram]) -> None:
    """Serve one host on stdin/stdout until it closes them."""
    server.run("stdio")


def run_http(server: MCPServer[Engram], settings: McpSettings) -> None:
    """Serve streamable HTTP on ``settings.host:port`` at ``settings.path`` until interrupted."""
    import uvicorn

    app: ASGIApp = server.streamable_http_app(streamable_http_path=settings.path, host=settings.host)
    if settings.token:
        app = BearerToken(app, settings.token)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                            lifespan="on")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"engram-mcp: streamable HTTP on http://{host}:{settings.port}{settings.path} "
          f"({'bearer token required' if settings.token else 'no token: this machine only'}), "
          f"Engram at {settings.url}", file=sys.stderr, flush=True)
    anyio.run(uvicorn.Server(config).serve)
