"""A lean HTTP/1.1 keep-alive client on asyncio streams, for load at a fixed concurrency.

Why not httpx: on a 2-core machine the client shares the CPU with the server it measures. httpx
spends several times more CPU per request than this client, so a hello-world "ceiling" measured
with it is mostly the client's own ceiling. This client only writes pre-built requests and reads
responses by Content-Length (or chunked), nothing else.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class HTTPError(Exception):
    pass


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**24)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, raw: bytes) -> Response:
        if self.writer is None:
            await self.open()
        try:
            return await self._roundtrip(raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The server closed a kept-alive connection: one retry on a fresh one.
            self.close()
            await self.open()
            return await self._roundtrip(raw)

    async def _roundtrip(self, raw: bytes) -> Response:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, body, headers)


class Client:
    """A pool of keep-alive connections to one server; ``request`` is safe from many tasks."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self._extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._idle: list[Connection] = []

    def build(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> bytes:
        """The raw request; build it before timing to leave JSON encoding out of the measure."""
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._extra}{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        return head.encode("latin-1") + data

    async def send(self, raw: bytes) -> Response:
        conn = self._idle.pop() if self._idle else Connection(self.host, self.port)
        try:
            resp = await conn.send(raw)
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        return resp

    async def request(self, method: str, path: str, body: Any = None, expect: Sequence[int] = (200, 201, 202, 204),
                      headers: dict[str, str] | None = None) -> Response:
        resp = await self.send(self.build(method, path, body, headers))
        if expect and resp.status not in expect:
            raise HTTPError(f"{method} {path} -> {resp.status}: {resp.body[:500]!r}")
        return resp

    def close(self) -> None:
        for c in self._idle:
            c.close()
        self._idle.clear()


@dataclass
class LoadResult:
    elapsed: float
    latencies: list[float] = field(default_factory=list)  # seconds, in completion order
    statuses: dict[int, int] = field(default_factory=dict)
    responses: list[Response | None] = field(default_factory=list)  # by request index, when kept

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0


async def run_load(client: Client, requests: Sequence[bytes], concurrency: int, keep: bool = False) -> LoadResult:
    """Send the pre-built requests with ``concurrency`` connections, each request once."""
    conns = [Connection(client.host, client.port) for _ in range(concurrency)]
    for c in conns:
        await c.open()
    result = LoadResult(elapsed=0.0, responses=[None] * len(requests) if keep else [])
    next_index = 0

    async def worker(conn: Connection) -> None:
        nonlocal next_index
        while next_index < len(requests):
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            resp = await conn.send(requests[i])
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[resp.status] = result.statuses.get(resp.status, 0) + 1
            if keep:
                result.responses[i] = resp

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        result.elapsed = time.perf_counter() - start
        for c in conns:
            c.close()
    return result

