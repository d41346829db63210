"""The synchronous client (``httpx.Client``) and its ``JobHandle``.

It runs the ``Call``s of ``engram_client.calls.Calls``; ``engram_client.aio`` runs the same ones asynchronously.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from engram_client.calls import Call, Calls
from engram_client.core import MAX_WAIT, PROGRESS_POLL, ClientCore
from engram_client.errors import JobTimeoutError, ValidationError, wait_cap
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


class JobHandle:
    """A job of ``integrate``/``truncate``: ``job`` is its last seen state; ``wait()`` follows it."""

    def __init__(self, client: EngramClient, namespace: str, job: Job, coalesced: bool = False) -> None:
        self.client, self.namespace, self.job = client, namespace, job
        self.coalesced = coalesced  # True when the API returned an already queued job (200, not 202)
        self._cap = MAX_WAIT

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def done(self) -> bool:
        return self.job.status in FINISHED

    def refresh(self, wait: int = 0) -> Job:
        """Fetch the job again (long-polling up to ``wait`` seconds for it to finish)."""
        while True:
            try:
                self.job = self.client.get_job(self.namespace, self.job.id, wait=min(wait, self._cap))
                return self.job
            except ValidationError as exc:
                cap = wait_cap(exc)
                if cap is None or cap >= min(wait, self._cap):
                    raise
                self._cap = cap

    def cancel(self) -> Job:
        self.job = self.client.cancel_job(self.namespace, self.job.id)
        return self.job

    def wait(self, timeout: float | None = None, on_progress: Callable[[Job], None] | None = None,
             poll: int | None = None) -> Job:
        """Long-poll ``GET …/jobs/{id}?wait=N`` until the job finishes; return its final state.

        ``on_progress(job)`` is called with the current state first, then on every change seen.
        ``poll`` is N (at most 30); it defaults to 30, or to 2 with ``on_progress``: the long-poll
        answers early only when the job finishes, so a shorter one shows progress as it moves.
        Raises ``JobTimeoutError`` if ``timeout`` seconds pass first (the job itself goes on).
        """
        n = max(0, min(poll if poll is not None else (PROGRESS_POLL if on_progress else MAX_WAIT), MAX_WAIT))
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = self.job
        if on_progress:
            on_progress(seen)
        while not self.done:
            step = n
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise JobTimeoutError(self.job, timeout or 0)
                step = max(1, min(step, math.ceil(remaining)))
            self.refresh(step)
            if min(step, self._cap) == 0 and not self.done:
                time.sleep(1)  # no long-poll (poll=0, or a server that refuses them): plain polling
            if self.job != seen:
                seen = self.job
                if on_progress:
                    on_progress(seen)
        return self.job


class EngramClient(ClientCore):
    """Synchronous Engram client. Settings default to ENGRAM_URL and ENGRAM_API_KEY (or ENGRAM_ADMIN_KEY).

    ``http`` injects a ready ``httpx.Client`` (e.g. FastAPI's TestClient); it is not closed by ``close()``.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float | None = 30,
                 transport: httpx.BaseTransport | None = None, http: httpx.Client | None = None) -> None:
        if base_url is None and http is not None and str(http.base_url):
            base_url = str(http.base_url)
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http is None
        self.http = http if http is not None else httpx.Client(transport=transport, timeout=timeout,
                                                                    verify=self.verifies_tls)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> EngramClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, call: Call[T]) -> T:
        """Run one ``Call``; raise ``EngramAPIError``/``EngramConnectionError`` on failure."""
        try:
            r = self.http.request(**self.request_args(call))
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        return self.finish(call, r)

    def pages(self, lister: Callable[..., Page[T]], *args: Any, **kwargs: Any) -> Iterator[T]:
        """Every item of a list, following ``next_cursor``: ``pages(client.list_agents, "ns")``."""
        cursor = kwargs.pop("cursor", None)
        while True:
            page = lister(*args, cursor=cursor, **kwargs)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # namespaces and keys
    def put_namespace(self, namespace: str, description: str = "") -> Namespace:
        return self.call(Calls.put_namespace(namespace, description))

    def list_namespaces(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Namespace]:
        return self.call(Calls.list_namespaces(limit, cursor))

    def iter_namespaces(self, *, limit: int | None = None) -> Iterator[Namespace]:
        return self.pages(self.list_namespaces, limit=limit)

    def get_namespace(self, namespace: str) -> Namespace:
        return self.call(Calls.get_namespace(namespace))

    def create_key(self, namespace: str, description: str = "") -> KeyCreated:
        return self.call(Calls.create_key(namespace, description))

    def list_keys(self, namespace: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Key]:
        return self.call(Calls.list_keys(namespace, limit, cursor))

    def iter_keys(self, namespace: str, *, limit: int | None = None) -> Iterator[Key]:
        return self.pages(self.list_keys, namespace, limit=limit)

    def delete_key(self, namespace: str, key_id: str) -> None:
        self.call(Calls.delete_key(namespace, key_id))

    # agents and memories
    # Each resource's put/list/iter/get/delete alike, as webhooks' below: one typed method per Call of
    # calls.py, so that each keeps its own signature and answer type.
    def put_agent(self, namespace: str, agent: str, description: str = "",
                  metadata: Mapping[str, Any] | None = None) -> Agent:
        return self.call(Calls.put_agent(namespace, agent, description, metadata))

    def list_agents(self, namespace: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Agent]:
        return self.call(Calls.list_agents(namespace, limit, cursor))

    def iter_agents(self, namespace: str, *, limit: int | None = None) -> Iterator[Agent]:
        return self.pages(self.list_agents, namespace, limit=limit)

    def get_agent(self, namespace: str, agent: str) -> Agent:
        return self.call(Calls.get_agent(namespace, agent))

    def delete_agent(self, namespace: str, agent: str) -> None:
        self.call(Calls.delete_agent(namespace, agent))

    def recall(self, namespace: str, agent: str, query: str, *, limit: int = 10, session: str | None = None,
               kinds: Iterable[str] | None = None) -> RecallResult:
        """The agent's memories most useful for ``query``, best first, each with its evidence and score."""
        return self.call(Calls.recall(namespace, agent, query, limit, session, kinds))

    def forget(self, namespace: str, agent: str, memory_id: int) -> None:
        """Forget one memory."""
        self.call(Calls.forget(namespace, agent, memory_id))

    def context(self, namespace: str, session: str, participant: str, *, query: str | None = None,
                max_chars: int | None = None) -> Context:
        """What ``participant`` needs for its next reply: latest turns, recalled memories, insights, ``text``."""
        return self.call(Calls.context(namespace, session, participant, query, max_chars))

    def redact_turn(self, namespace: str, session: str, seq: int) -> RedactResult:
        """Erase a turn's content and delete every insight and memory citing it."""
        return self.call(Calls.redact_turn(namespace, session, seq))

    def list_memories(self, namespace: str, agent: str, *, limit: int | None = None,
                      cursor: str | None = None) -> Page[Memory]:
        return self.call(Calls.list_memories(namespace, agent, limit, cursor))

    def iter_memories(self, namespace: str, agent: str, *, limit: int | None = None) -> Iterator[Memory]:
        return self.pages(self.list_memories, namespace, agent, limit=limit)

    # sessions and participants
    def create_session(self, namespace: str, name: str | None = None, description: str = "",
                       data: Mapping[str, Any] | None = None) -> Session:
        return self.call(Calls.create_session(namespace, name, description, data))

    def list_sessions(self, namespace: str, *, include_deleted: bool = False, limit: int | None = None,
                      cursor: str | None = None) -> Page[Session]:
        return self.call(Calls.list_sessions(namespace, include_deleted, limit, cursor))

    def iter_sessions(self, namespace: str, *, include_deleted: bool = False,
                      limit: int | None = None) -> Iterator[Session]:
        return self.pages(self.list_sessions, namespace, include_deleted=include_deleted, limit=limit)

    def get_session(self, namespace: str, session: str) -> Session:
        return self.call(Calls.get_session(namespace, session))

    def update_session(self, namespace: str, session: str, patch: Mapping[str, Any], *,
                       if_match: str | None = None) -> Session:
        """JSON merge patch of ``description``/``data``; ``if_match=session.etag`` guards lost updates."""
        return self.call(Calls.update_session(namespace, session, patch, if_match))

    def delete_session(self, namespace: str, session: str) -> Session:
        return self.call(Calls.delete_session(namespace, session))

    def undelete_session(self, namespace: str, session: str) -> Session:
        return self.call(Calls.undelete_session(namespace, session))

    def bind(self, namespace: str, session: str, agent: str) -> Participant:
        return self.call(Calls.bind(namespace, session, agent))

    def unbind(self, namespace: str, session: str, agent: str) -> None:
        self.call(Calls.unbind(namespace, session, agent))

    def list_participants(self, namespace: str, session: str) -> Page[Participant]:
        return self.call(Calls.list_participants(namespace, session))

    def list_insights(self, namespace: str, session: str, participant: str, *, limit: int | None = None,
                      cursor: str | None = None) -> Page[Insight]:
        return self.call(Calls.list_insights(namespace, session, participant, limit, cursor))

    def iter_insights(self, namespace: str, session: str, participant: str, *,
                      limit: int | None = None) -> Iterator[Insight]:
        return self.pages(self.list_insights, namespace, session, participant, limit=limit)

    # turns
    def append_turns(self, namespace: str, session: str, turns: Iterable[Mapping[str, Any] | BaseModel], *,
                     idempotency_key: str | None = None) -> AppendResult:
        """Append turns (dicts or ``TurnIn``) atomically, in one request."""
        return self.call(Calls.append_turns(namespace, session, turns, idempotency_key))

    def list_turns(self, namespace: str, session: str, *, participant: str | None = None,
                   after_seq: int | None = None, limit: int | None = None, cursor: str | None = None) -> Page[Turn]:
        return self.call(Calls.list_turns(namespace, session, participant, after_seq, limit, cursor))

    def iter_turns(self, namespace: str, session: str, *, participant: str | None = None,
                   after_seq: int | None = None, limit: int | None = None) -> Iterator[Turn]:
        return self.pages(self.list_turns, namespace, session, participant=participant, after_seq=after_seq,
                          limit=limit)

    # long operations and jobs
    def _start(self, namespace: str, session: str, kind: str, key: str | None) -> JobHandle:
        job = self.call(Calls.start(namespace, session, kind, key))
        return JobHandle(self, namespace, job, coalesced=self.last_response is not None
                         and self.last_response.status_code == 200)

    def integrate(self, namespace: str, session: str, *, idempotency_key: str | None = None) -> JobHandle:
        """Start an integration; ``.wait()`` on the handle follows it to the end."""
        return self._start(namespace, session, "integrate", idempotency_key)

    def truncate(self, namespace: str, session: str, *, idempotency_key: str | None = None) -> JobHandle:
        """Start a truncate; ``.wait()`` on the handle follows it to the end."""
        return self._start(namespace, session, "truncate", idempotency_key)

    def job(self, namespace: str, job_id: str) -> JobHandle:
        """A handle on an existing job (fetched now)."""
        return JobHandle(self, namespace, self.get_job(namespace, job_id))

    def get_job(self, namespace: str, job_id: str, wait: int = 0) -> Job:
        return self.call(Calls.get_job(namespace, job_id, wait))

    def list_jobs(self, namespace: str, *, session: str | None = None, kind: str | None = None,
                  status: str | None = None, limit: int | None = None, cursor: str | None = None) -> Page[Job]:
        return self.call(Calls.list_jobs(namespace, session, kind, status, limit, cursor))

    def iter_jobs(self, namespace: str, *, session: str | None = None, kind: str | None = None,
                  status: str | None = None, limit: int | None = None) -> Iterator[Job]:
        return self.pages(self.list_jobs, namespace, session=session, kind=kind, status=status, limit=limit)

    def cancel_job(self, namespace: str, job_id: str) -> Job:
        return self.call(Calls.cancel_job(namespace, job_id))

    # webhooks
    def put_webhook(self, namespace: str, webhook: str, url: str, events: Iterable[str | WebhookEvent], *,
                    description: str = "") -> Webhook:
        """Register an endpoint for the namespace's job events, or update its URL, events and description.

        A new endpoint comes back as ``WebhookCreated``, whose ``secret`` (``whsec_…``) is shown this
        once: keep it to check the requests with ``engram_client.verify``. An update keeps the secret.
        """
        return self.call(Calls.put_webhook(namespace, webhook, url, events, description))

    def list_webhooks(self, namespace: str, *, limit: int | None = None,
                      cursor: str | None = None) -> Page[Webhook]:
        return self.call(Calls.list_webhooks(namespace, limit, cursor))

    def iter_webhooks(self, namespace: str, *, limit: int | None = None) -> Iterator[Webhook]:
        return self.pages(self.list_webhooks, namespace, limit=limit)

    def get_webhook(self, namespace: str, webhook: str) -> Webhook:
        return self.call(Calls.get_webhook(namespace, webhook))

    def delete_webhook(self, namespace: str, webhook: str) -> None:
        """Delete an endpoint; its deliveries not yet sent are dropped."""
        self.call(Calls.delete_webhook(namespace, webhook))

    def list_deliveries(self, namespace: str, webhook: str, *, limit: int | None = None,
                        cursor: str | None = None) -> Page[Delivery]:
        """An endpoint's deliveries, newest first, each with its attempts."""
        return self.call(Calls.list_deliveries(namespace, webhook, limit, cursor))

    def iter_deliveries(self, namespace: str, webhook: str, *, limit: int | None = None) -> Iterator[Delivery]:
        return self.pages(self.list_deliveries, namespace, webhook, limit=limit)
