"""ASGI middleware: body size limit (streamed bodies counted too) and request ids."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import observe_request
from shared.errors import PROBLEM_MEDIA_TYPE, problem_body
from shared.logs import bind, clear

log = logging.getLogger("engram.api.access")
_SCOPE = re.compile(r"^/v1/namespaces/([a-z0-9][a-z0-9_-]{0,62})(?:/sessions/([a-z0-9][a-z0-9_-]{0,62}))?")


class BodyLimitMiddleware:
    """Answer 413 before the app sees a body larger than ``max_bytes``.

    A declared Content-Length is checked at once; a chunked body is read up to the limit and
    refused as soon as it passes it. The limit keeps the buffered body small, so it is then
    handed to the app from memory.

    Before the 413 the rest of the body is read and dropped (a lingering close), up to
    ``DRAIN_FACTOR`` times the limit: a client that writes its whole body before reading the
    answer (Python's urllib, curl without Expect) would otherwise see the connection reset by
    the close and never read the 413.
    """

    DRAIN_FACTOR = 8

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._drain(receive, 0)
                await self._refuse(scope, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, read: int) -> None:
        """Read and drop the rest of the body, up to the drain budget or a disconnect."""
        while read <= self.max_bytes * self.DRAIN_FACTOR:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(problem_body(
            413, "Payload too large", f"the request body is larger than {self.max_bytes} bytes (ENGRAM_MAX_BODY_BYTES)",
            type_slug="payload-too-large", instance=scope.get("path", ""))).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Give every request an id (or keep the caller's X-Request-ID), echo it, log one line and
    count it in the metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 100 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        clear()
        match = _SCOPE.match(scope.get("path", ""))
        bind(request_id=request_id, namespace=match and match.group(1), session=match and match.group(2))
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, seconds * 1000)
            observe_request(scope["method"], getattr(scope.get("route"), "path", None) or "unmatched", status, seconds)
