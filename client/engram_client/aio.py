"""The asynchronous client (``httpx.AsyncClient``) and its ``AsyncJobHandle``.

Same methods, arguments and results as ``engram_client.sync.EngramClient``, awaited; ``iter_*`` are
async iterators (``async for agent in client.iter_agents("ns")``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from engram_client.calls import Call, Calls
from engram_client.core import MAX_WAIT, PROGRESS_POLL, ClientCore
from engram_client.errors import JobTimeoutError, ValidationError, wait_cap

# This module is sync.py awaited, line for line (imports, handle, methods): httpx's two clients need
# two faces; what they send is written once in calls.py, and tests/unit/test_client.py runs both.
from engram_client.models import (
    FINISHED,
    Agent,
    AppendResult,
    Context,
    Delivery,
    Insight,
    Job,
    Key,
    KeyCreated,
    Memory,
    Namespace,
    Page,
    Participant,
    RecallResult,
    RedactResult,
    Session,
    Turn,
    Webhook,
    WebhookEvent,
)

T = TypeVar("T")


class AsyncJobHandle:
    """A job of ``integrate``/``truncate``: ``job`` is its last seen state; ``await wait()`` follows it."""

    def __init__(self, client: AsyncEngramClient, namespace: str, job: Job, coalesced: bool = False) -> None:
        self.client, self.namespace, self.job = client, namespace, job
        self.coalesced = coalesced
        self._cap = MAX_WAIT

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def done(self) -> bool:
        return self.job.status in FINISHED

    async def refresh(self, wait: int = 0) -> Job:
        while True:
            try:
                self.job = await self.client.get_job(self.namespace, self.job.id, wait=min(wait, self._cap))
                return self.job
            except ValidationError as exc:
                cap = wait_cap(exc)
                if cap is None or cap >= min(wait, self._cap):
                    raise
                self._cap = cap

    async def cancel(self) -> Job:
        self.job = await self.client.cancel_job(self.namespace, self.job.id)
        return self.job

    async def wait(self, timeout: float | None = None,
                   on_progress: Callable[[Job], Awaitable[None] | None] | None = None,
                   poll: int | None = None) -> Job:
        """As ``JobHandle.wait``; ``on_progress`` may be a plain function or a coroutine function."""
        n = max(0, min(poll if poll is not None else (PROGRESS_POLL if on_progress else MAX_WAIT), MAX_WAIT))
        deadline = None if timeout is None else time.monotonic() + timeout

        async def report(job: Job) -> None:
            if on_progress is not None:
                out = on_progress(job)
                if out is not None:
                    await out

        seen = self.job
        await report(seen)
        while not self.done:
            step = n
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise JobTimeoutError(self.job, timeout or 0)
                step = max(1, min(step, math.ceil(remaining)))
            await self.refresh(step)
            if min(step, self._cap) == 0 and not self.done:
                await asyncio.sleep(1)
            if self.job != seen:
                seen = self.job
                await report(seen)
        return self.job


class AsyncEngramClient(ClientCore):
    """Asynchronous Engram client. ``http`` injects a ready ``httpx.AsyncClient`` (not closed by ``aclose()``)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float | None = 30,
                 transport: httpx.AsyncBaseTransport | None = None, http: httpx.AsyncClient | None = None) -> None:
        if base_url is None and http is not None and str(http.base_url):
            base_url = str(http.base_url)
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http is None
        self.http = http if http is not None else httpx.AsyncClient(
            transport=transport, timeout=timeout, verify=self.verifies_tls)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncEngramClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def call(self, call: Call[T]) -> T:
        try:
            r = await self.http.request(**self.request_args(call))
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        return self.finish(call, r)

    async def pages(self, lister: Callable[..., Awaitable[Page[T]]], *args: Any, **kwargs: Any) -> AsyncIterator[T]:
        """Every item of a list, following ``next_cursor``."""
        cursor = kwargs.pop("cursor", None)
        while True:
            page = await lister(*args, cursor=cursor, **kwargs)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # namespaces and keys
    async def put_namespace(self, namespace: str, description: str = "") -> Namespace:
        return await self.call(Calls.put_namespace(namespace, description))

    async def list_namespaces(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Namespace]:
        return await self.call(Calls.list_namespaces(limit, cursor))

    def iter_namespaces(self, *, limit: int | None = None) -> AsyncIterator[Namespace]:
        return self.pages(self.list_namespaces, limit=limit)

    async def get_namespace(self, namespace: str) -> Namespace:
        return await self.call(Calls.get_namespace(namespace))

    async def create_key(self, namespace: str, description: str = "") -> KeyCreated:
        return await self.call(Calls.create_key(namespace, description))

    async def list_keys(self, namespace: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Key]:
        return await self.call(Calls.list_keys(namespace, limit, cursor))

    def iter_keys(self, namespace: str, *, limit: int | None = None) -> AsyncIterator[Key]:
        return self.pages(self.list_keys, namespace, limit=limit)

    async def delete_key(self, namespace: str, key_id: str) -> None:
        await self.call(Calls.delete_key(namespace, key_id))

    # agents and memories. Each resource's put/list/iter/get/delete alike, as webhooks' below: one typed
    # method per Call of calls.py, so that each keeps its own signature and answer type.
    async def put_agent(self, namespace: str, agent: str, description: str = "",
                        metadata: Mapping[str, Any] | None = None) -> Agent:
        return await self.call(Calls.put_agent(namespace, agent, description, metadata))

    async def list_agents(self, namespace: str, *, limit: int | None = None,
                          cursor: str | None = None) -> Page[Agent]:
        return await self.call(Calls.list_agents(namespace, limit, cursor))

    def iter_agents(self, namespace: str, *, limit: int | None = None) -> AsyncIterator[Agent]:
        return self.pages(self.list_agents, namespace, limit=limit)

    async def get_agent(self, namespace: str, agent: str) -> Agent:
        return await self.call(Calls.get_agent(namespace, agent))

    async def delete_agent(self, namespace: str, agent: str) -> None:
        await self.call(Calls.delete_agent(namespace, agent))

    async def recall(self, namespace: str, agent: str, query: str, *, limit: int = 10, session: str | None = None,
               kinds: Iterable[str] | None = None) -> RecallResult:
        """The agent's memories most useful for ``query``, best first, each with its evidence and score."""
        return await self.call(Calls.recall(namespace, agent, query, limit, session, kinds))

    async def forget(self, namespace: str, agent: str, memory_id: int) -> None:
        """Forget one memory."""
        await self.call(Calls.forget(namespace, agent, memory_id))

    async def context(self, namespace: str, session: str, participant: str, *, query: str | None = None,
                max_chars: int | None = None) -> Context:
        """What ``participant`` needs for its next reply: latest turns, recalled memories, insights, ``text``."""
        return await self.call(Calls.context(namespace, session, participant, query, max_chars))

    async def redact_turn(self, namespace: str, session: str, seq: int) -> RedactResult:
        """Erase a turn's content and delete every insight and memory citing it."""
        return await self.call(Calls.redact_turn(namespace, session, seq))

    async def list_memories(self, namespace: str, agent: str, *, limit: int | None = None,
                            cursor: str | None = None) -> Page[Memory]:
        return await self.call(Calls.list_memories(namespace, agent, limit, cursor))

    def iter_memories(self, namespace: str, agent: str, *, limit: int | None = None) -> AsyncIterator[Memory]:
        return self.pages(self.list_memories, namespace, agent, limit=limit)

    # sessions and participants
    async def create_session(self, namespace: str, name: str | None = None, description: str = "",
                             data: Mapping[str, Any] | None = None) -> Session:
        return await self.call(Calls.create_session(namespace, name, description, data))

    async def list_sessions(self, namespace: str, *, include_deleted: bool = False, limit: int | None = None,
                            cursor: str | None = None) -> Page[Session]:
        return await self.call(Calls.list_sessions(namespace, include_deleted, limit, cursor))

    def iter_sessions(self, namespace: str, *, include_deleted: bool = False,
                      limit: int | None = None) -> AsyncIterator[Session]:
        return self.pages(self.list_sessions, namespace, include_deleted=include_deleted, limit=limit)

    async def get_session(self, namespace: str, session: str) -> Session:
        return await self.call(Calls.get_session(namespace, session))

    async def update_session(self, namespace: str, session: str, patch: Mapping[str, Any], *,
                             if_match: str | None = None) -> Session:
        return await self.call(Calls.update_session(namespace, session, patch, if_match))

    async def delete_session(self, namespace: str, session: str) -> Session:
        return await self.call(Calls.delete_session(namespace, session))

    async def undelete_session(self, namespace: str, session: str) -> Session:
        return await self.call(Calls.undelete_session(namespace, session))

    async def bind(self, namespace: str, session: str, agent: str) -> Participant:
        return await self.call(Calls.bind(namespace, session, agent))

    async def unbind(self, namespace: str, session: str, agent: str) -> None:
        await self.call(Calls.unbind(namespace, session, agent))

    async def list_participants(self, namespace: str, session: str) -> Page[Participant]:
        return await self.call(Calls.list_participants(namespace, session))

    async def list_insights(self, namespace: str, session: str, participant: str, *, limit: int | None = None,
                            cursor: str | None = None) -> Page[Insight]:
        return await self.call(Calls.list_insights(namespace, session, participant, limit, cursor))

    def iter_insights(self, namespace: str, session: str, participant: str, *,
                      limit: int | None = None) -> AsyncIterator[Insight]:
        return self.pages(self.list_insights, namespace, session, participant, limit=limit)

    # turns
    async def append_turns(self, namespace: str, session: str, turns: Iterable[Mapping[str, Any] | BaseModel], *,
                           idempotency_key: str | None = None) -> AppendResult:
        return await self.call(Calls.append_turns(namespace, session, turns, idempotency_key))

    async def list_turns(self, namespace: str, session: str, *, participant: str | None = None,
                         after_seq: int | None = None, limit: int | None = None,
                         cursor: str | None = None) -> Page[Turn]:
        return await self.call(Calls.list_turns(namespace, session, participant, after_seq, limit, cursor))

    def iter_turns(self, namespace: str, session: str, *, participant: str | None = None,
                   after_seq: int | None = None, limit: int | None = None) -> AsyncIterator[Turn]:
        return self.pages(self.list_turns, namespace, session, participant=participant, after_seq=after_seq,
                          limit=limit)

    # long operations and jobs
    async def _start(self, namespace: str, session: str, kind: str, key: str | None) -> AsyncJobHandle:
        job = await self.call(Calls.start(namespace, session, kind, key))
        return AsyncJobHandle(self, namespace, job, coalesced=self.last_response is not None
                              and self.last_response.status_code == 200)

    async def integrate(self, namespace: str, session: str, *, idempotency_key: str | None = None) -> AsyncJobHandle:
        return await self._start(namespace, session, "integrate", idempotency_key)

    async def truncate(self, namespace: str, session: str, *, idempotency_key: str | None = None) -> AsyncJobHandle:
        return await self._start(namespace, session, "truncate", idempotency_key)

    async def job(self, namespace: str, job_id: str) -> AsyncJobHandle:
        return AsyncJobHandle(self, namespace, await self.get_job(namespace, job_id))

    async def get_job(self, namespace: str, job_id: str, wait: int = 0) -> Job:
        return await self.call(Calls.get_job(namespace, job_id, wait))

    async def list_jobs(self, namespace: str, *, session: str | None = None, kind: str | None = None,
                        status: str | None = None, limit: int | None = None,
                        cursor: str | None = None) -> Page[Job]:
        return await self.call(Calls.list_jobs(namespace, session, kind, status, limit, cursor))

    def iter_jobs(self, namespace: str, *, session: str | None = None, kind: str | None = None,
                  status: str | None = None, limit: int | None = None) -> AsyncIterator[Job]:
        return self.pages(self.list_jobs, namespace, session=session, kind=kind, status=status, limit=limit)

    async def cancel_job(self, namespace: str, job_id: str) -> Job:
        return await self.call(Calls.cancel_job(namespace, job_id))

    # webhooks
    async def put_webhook(self, namespace: str, webhook: str, url: str, events: Iterable[str | WebhookEvent], *,
                          description: str = "") -> Webhook:
        """Register an endpoint for the namespace's job events, or update its URL, events and description.

        A new endpoint comes back as ``WebhookCreated``, whose ``secret`` (``whsec_…``) is shown this
        once: keep it to check the requests with ``engram_client.verify``. An update keeps the secret.
        """
        return await self.call(Calls.put_webhook(namespace, webhook, url, events, description))

    async def list_webhooks(self, namespace: str, *, limit: int | None = None,
                            cursor: str | None = None) -> Page[Webhook]:
        return await self.call(Calls.list_webhooks(namespace, limit, cursor))

    def iter_webhooks(self, namespace: str, *, limit: int | None = None) -> AsyncIterator[Webhook]:
        return self.pages(self.list_webhooks, namespace, limit=limit)

    async def get_webhook(self, namespace: str, webhook: str) -> Webhook:
        return await self.call(Calls.get_webhook(namespace, webhook))

    async def delete_webhook(self, namespace: str, webhook: str) -> None:
        """Delete an endpoint; its deliveries not yet sent are dropped."""
        await self.call(Calls.delete_webhook(namespace, webhook))

    async def list_deliveries(self, namespace: str, webhook: str, *, limit: int | None = None,
                              cursor: str | None = None) -> Page[Delivery]:
        """An endpoint's deliveries, newest first, each with its attempts."""
        return await self.call(Calls.list_deliveries(namespace, webhook, limit, cursor))

    def iter_deliveries(self, namespace: str, webhook: str, *, limit: int | None = None) -> AsyncIterator[Delivery]:
        return self.pages(self.list_deliveries, namespace, webhook, limit=limit)
