"""The endpoint table: every request of the API described once, as a ``Call``.

A ``Call`` holds the method, path, query, body, headers and how to parse the answer.
``engram_client.sync.EngramClient`` runs calls with ``httpx.Client`` and
``engram_client.aio.AsyncEngramClient`` runs the same calls with ``httpx.AsyncClient``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

# The same names as aio.py and sync.py import: this table parses each answer into its model, and
# the two clients annotate their methods with it.
from engram_client.models import (
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
    WebhookCreated,
    WebhookEvent,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request of the API and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    wait: float = 0  # long-poll seconds, added to the read timeout


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _model(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda r: cls.model_validate(r.json())


def _nothing(_: httpx.Response) -> None:
    return None


def _session(r: httpx.Response) -> Session:
    return Session.model_validate({**r.json(), "etag": r.headers.get("ETag")})


def _webhook(r: httpx.Response) -> Webhook:
    # 201: created, and the body carries the signing secret (this once); 200: updated, without it.
    return (WebhookCreated if r.status_code == 201 else Webhook).model_validate(r.json())


def _query(**values: Any) -> dict[str, Any]:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items() if v is not None}


def _idem(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


def turn_dict(turn: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    return turn.model_dump(mode="json", exclude_unset=True) if isinstance(turn, BaseModel) else dict(turn)


def _ns(ns: str) -> str:
    return f"/v1/namespaces/{_seg(ns)}"


def _s(ns: str, session: str) -> str:
    return f"{_ns(ns)}/sessions/{_seg(session)}"


class Calls:
    """Every endpoint of the API, as a ``Call``."""

    @staticmethod
    def put_namespace(ns: str, description: str = "") -> Call[Namespace]:
        return Call("PUT", _ns(ns), _model(Namespace), json={"description": description})

    @staticmethod
    def list_namespaces(limit: int | None = None, cursor: str | None = None) -> Call[Page[Namespace]]:
        return Call("GET", "/v1/namespaces", _model(Page[Namespace]), _query(limit=limit, cursor=cursor))

    @staticmethod
    def get_namespace(ns: str) -> Call[Namespace]:
        return Call("GET", _ns(ns), _model(Namespace))

    @staticmethod
    def create_key(ns: str, description: str = "") -> Call[KeyCreated]:
        return Call("POST", f"{_ns(ns)}/keys", _model(KeyCreated), json={"description": description})

    @staticmethod
    def list_keys(ns: str, limit: int | None = None, cursor: str | None = None) -> Call[Page[Key]]:
        return Call("GET", f"{_ns(ns)}/keys", _model(Page[Key]), _query(limit=limit, cursor=cursor))

    @staticmethod
    def delete_key(ns: str, key_id: str) -> Call[None]:
        return Call("DELETE", f"{_ns(ns)}/keys/{_seg(key_id)}", _nothing)

    @staticmethod
    def put_agent(ns: str, agent: str, description: str = "",
                  metadata: Mapping[str, Any] | None = None) -> Call[Agent]:
        return Call("PUT", f"{_ns(ns)}/agents/{_seg(agent)}", _model(Agent),
                    json={"description": description, "metadata": dict(metadata or {})})

    # list/get/delete alike for each resource (agents, webhooks...): one typed method per endpoint, its
    # answer's model in its signature, which a generic factory would lose.
    @staticmethod
    def list_agents(ns: str, limit: int | None = None, cursor: str | None = None) -> Call[Page[Agent]]:
        return Call("GET", f"{_ns(ns)}/agents", _model(Page[Agent]), _query(limit=limit, cursor=cursor))

    @staticmethod
    def get_agent(ns: str, agent: str) -> Call[Agent]:
        return Call("GET", f"{_ns(ns)}/agents/{_seg(agent)}", _model(Agent))

    @staticmethod
    def delete_agent(ns: str, agent: str) -> Call[None]:
        return Call("DELETE", f"{_ns(ns)}/agents/{_seg(agent)}", _nothing)

    @staticmethod
    def recall(ns: str, agent: str, query: str, limit: int = 10, session: str | None = None,
               kinds: Iterable[str] | None = None) -> Call[RecallResult]:
        body: dict[str, Any] = {"query": query, "limit": limit}
        if session is not None:
            body["session"] = session
        if kinds is not None:
            body["kinds"] = list(kinds)
        return Call("POST", f"{_ns(ns)}/agents/{_seg(agent)}/recall", _model(RecallResult), json=body)

    @staticmethod
    def forget(ns: str, agent: str, memory_id: int) -> Call[None]:
        return Call("DELETE", f"{_ns(ns)}/agents/{_seg(agent)}/memories/{int(memory_id)}", _nothing)

    @staticmethod
    def context(ns: str, session: str, participant: str, query: str | None = None, max_chars: int | None = None,
                ) -> Call[Context]:
        return Call("GET", f"{_s(ns, session)}/participants/{_seg(participant)}/context", _model(Context),
                    _query(query=query, max_chars=max_chars))

    @staticmethod
    def redact_turn(ns: str, session: str, seq: int) -> Call[RedactResult]:
        return Call("DELETE", f"{_s(ns, session)}/turns/{int(seq)}", _model(RedactResult))

    @staticmethod
    def list_memories(ns: str, agent: str, limit: int | None = None, cursor: str | None = None) -> Call[Page[Memory]]:
        return Call("GET", f"{_ns(ns)}/agents/{_seg(agent)}/memories", _model(Page[Memory]),
                    _query(limit=limit, cursor=cursor))

    @staticmethod
    def create_session(ns: str, name: str | None = None, description: str = "",
                       data: Mapping[str, Any] | None = None) -> Call[Session]:
        body: dict[str, Any] = {"description": description, "data": dict(data or {})}
        if name is not None:
            body["name"] = name
        return Call("POST", f"{_ns(ns)}/sessions", _session, json=body)

    @staticmethod
    def list_sessions(ns: str, include_deleted: bool = False, limit: int | None = None,
                      cursor: str | None = None) -> Call[Page[Session]]:
        return Call("GET", f"{_ns(ns)}/sessions", _model(Page[Session]),
                    _query(include_deleted=include_deleted or None, limit=limit, cursor=cursor))

    @staticmethod
    def get_session(ns: str, session: str) -> Call[Session]:
        return Call("GET", _s(ns, session), _session)

    @staticmethod
    def update_session(ns: str, session: str, patch: Mapping[str, Any], if_match: str | None = None) -> Call[Session]:
        headers = {"Content-Type": "application/merge-patch+json"}
        if if_match:
            headers["If-Match"] = if_match
        return Call("PATCH", _s(ns, session), _session, json=dict(patch), headers=headers)

    @staticmethod
    def delete_session(ns: str, session: str) -> Call[Session]:
        return Call("DELETE", _s(ns, session), _session)

    @staticmethod
    def undelete_session(ns: str, session: str) -> Call[Session]:
        return Call("POST", f"{_s(ns, session)}/undelete", _session)

    @staticmethod
    def bind(ns: str, session: str, agent: str) -> Call[Participant]:
        return Call("PUT", f"{_s(ns, session)}/participants/{_seg(agent)}", _model(Participant))

    @staticmethod
    def unbind(ns: str, session: str, agent: str) -> Call[None]:
        return Call("DELETE", f"{_s(ns, session)}/participants/{_seg(agent)}", _nothing)

    @staticmethod
    def list_participants(ns: str, session: str) -> Call[Page[Participant]]:
        return Call("GET", f"{_s(ns, session)}/participants", _model(Page[Participant]))

    @staticmethod
    def list_insights(ns: str, session: str, participant: str, limit: int | None = None,
                      cursor: str | None = None) -> Call[Page[Insight]]:
        return Call("GET", f"{_s(ns, session)}/participants/{_seg(participant)}/insights", _model(Page[Insight]),
                    _query(limit=limit, cursor=cursor))

    @staticmethod
    def append_turns(ns: str, session: str, turns: Iterable[Mapping[str, Any] | BaseModel],
                     idempotency_key: str | None = None) -> Call[AppendResult]:
        return Call("POST", f"{_s(ns, session)}/turns", _model(AppendResult),
                    json={"turns": [turn_dict(t) for t in turns]}, headers=_idem(idempotency_key))

    @staticmethod
    def list_turns(ns: str, session: str, participant: str | None = None, after_seq: int | None = None,
                   limit: int | None = None, cursor: str | None = None) -> Call[Page[Turn]]:
        return Call("GET", f"{_s(ns, session)}/turns", _model(Page[Turn]),
                    _query(participant=participant, after_seq=after_seq, limit=limit, cursor=cursor))

    @staticmethod
    def start(ns: str, session: str, kind: str, idempotency_key: str | None = None) -> Call[Job]:
        return Call("POST", f"{_s(ns, session)}/{kind}", _model(Job), headers=_idem(idempotency_key))

    @staticmethod
    def get_job(ns: str, job_id: str, wait: int = 0) -> Call[Job]:
        return Call("GET", f"{_ns(ns)}/jobs/{_seg(job_id)}", _model(Job), _query(wait=wait or None), wait=wait)

    @staticmethod
    def list_jobs(ns: str, session: str | None = None, kind: str | None = None, status: str | None = None,
                  limit: int | None = None, cursor: str | None = None) -> Call[Page[Job]]:
        return Call("GET", f"{_ns(ns)}/jobs", _model(Page[Job]),
                    _query(session=session, kind=kind, status=status, limit=limit, cursor=cursor))

    @staticmethod
    def cancel_job(ns: str, job_id: str) -> Call[Job]:
        return Call("POST", f"{_ns(ns)}/jobs/{_seg(job_id)}/cancel", _model(Job))

    @staticmethod
    def put_webhook(ns: str, webhook: str, url: str, events: Iterable[str | WebhookEvent],
                    description: str = "") -> Call[Webhook]:
        names = [events] if isinstance(events, str) else [str(e) for e in events]  # one event given alone
        return Call("PUT", f"{_ns(ns)}/webhooks/{_seg(webhook)}", _webhook,
                    json={"url": url, "events": names, "description": description})

    @staticmethod
    def list_webhooks(ns: str, limit: int | None = None, cursor: str | None = None) -> Call[Page[Webhook]]:
        return Call("GET", f"{_ns(ns)}/webhooks", _model(Page[Webhook]), _query(limit=limit, cursor=cursor))

    @staticmethod
    def get_webhook(ns: str, webhook: str) -> Call[Webhook]:
        return Call("GET", f"{_ns(ns)}/webhooks/{_seg(webhook)}", _model(Webhook))

    @staticmethod
    def delete_webhook(ns: str, webhook: str) -> Call[None]:
        return Call("DELETE", f"{_ns(ns)}/webhooks/{_seg(webhook)}", _nothing)

    @staticmethod
    def list_deliveries(ns: str, webhook: str, limit: int | None = None,
                        cursor: str | None = None) -> Call[Page[Delivery]]:
        return Call("GET", f"{_ns(ns)}/webhooks/{_seg(webhook)}/deliveries", _model(Page[Delivery]),
                    _query(limit=limit, cursor=cursor))
