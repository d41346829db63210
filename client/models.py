"""The Engram API as the client sees it: typed models, errors, settings, and the endpoint table.

The response models are the server's own schemas (``shared.*.schemas``), shipped in the same
distribution, so client and API cannot drift apart. They are re-exported here under short names.

Every endpoint is described once, in ``Calls``, as a ``Call``: method, path, query, body, headers
and how to parse the answer. ``client.sync.EngramClient`` runs calls with ``httpx.Client`` and
``client.aio.AsyncEngramClient`` runs the same calls with ``httpx.AsyncClient``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field

from shared.agents.schemas import AgentRead as Agent
from shared.memories.schemas import MemoryRead as Memory
from shared.jobs.schemas import FINISHED, JobKind, JobLinks, JobStatus, ParticipantResult, Progress
from shared.jobs.schemas import JobRead as Job
from shared.namespaces.schemas import KeyCreated
from shared.namespaces.schemas import KeyRead as Key
from shared.namespaces.schemas import NamespaceRead as Namespace
from shared.schemas import Page
from shared.sessions.schemas import InsightRead as Insight
from shared.sessions.schemas import ParticipantRead as Participant
from shared.sessions.schemas import SessionRead
from shared.turns.schemas import AppendResult
from shared.turns.schemas import TurnCreate as TurnIn
from shared.turns.schemas import TurnRead as Turn

__all__ = [
    "FINISHED", "Agent", "AppendResult", "AuthError", "Call", "Calls", "ConflictError", "EngramAPIError",
    "EngramConnectionError", "EngramError", "Insight", "Job", "JobKind", "JobLinks", "JobStatus", "JobTimeoutError",
    "Key", "KeyCreated", "Memory", "Namespace", "NotFoundError", "Page", "Participant", "ParticipantResult",
    "Progress", "Session", "Turn", "TurnIn", "ValidationError", "api_error", "raise_for_problem", "resolve_settings",
    "wait_cap",
]

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")


class Session(SessionRead):
    """A session, with the ``ETag`` the server sent along (pass it as ``if_match`` to update safely)."""

    etag: str | None = Field(None, exclude=True, description="The response's ETag header; not part of the body.")


# --------------------------------------------------------------------------------------------- errors


class EngramError(Exception):
    """Base of every error the client raises."""


class EngramConnectionError(EngramError):
    """The server could not be reached (refused, DNS, TLS, timeout, broken connection)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the Engram API at {url}: {reason}")
        self.url, self.reason = url, reason


class EngramAPIError(EngramError):
    """A non-2xx answer, parsed from its ``application/problem+json`` body (RFC 9457)."""

    def __init__(self, status: int, title: str, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail = status, title, detail
        self.problem: dict[str, Any] = problem or {}

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The invalid fields (``[{loc, msg, ...}]``) of a 422 or 400, else ``[]``."""
        errs = self.problem.get("errors")
        return [e for e in errs if isinstance(e, dict)] if isinstance(errs, list) else []


class AuthError(EngramAPIError):
    """401 (missing or unknown key) or 403 (the key may not do this)."""


class NotFoundError(EngramAPIError):
    """404: no such resource, or one the key may not see."""


class ConflictError(EngramAPIError):
    """409: the resource's state forbids it (name taken, session deleted, job finished, key in flight)."""


class ValidationError(EngramAPIError):
    """422: the request was understood but invalid; ``errors`` names the fields."""


_ERRORS: dict[int, type[EngramAPIError]] = {
    401: AuthError, 403: AuthError, 404: NotFoundError, 409: ConflictError, 422: ValidationError,
}


def api_error(status: int, title: str, detail: str, problem: dict[str, Any] | None = None) -> EngramAPIError:
    """The error class for ``status`` (``EngramAPIError`` itself for the others)."""
    return _ERRORS.get(status, EngramAPIError)(status, title, detail, problem)


class JobTimeoutError(EngramError, TimeoutError):
    """``wait(timeout=…)`` ran out before the job finished. The job goes on; ``job`` is its last state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g}s")
        self.job, self.timeout = job, timeout


# --------------------------------------------------------------------------------------------- settings


def resolve_settings(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """Arguments first, then ``ENGRAM_URL`` and ``ENGRAM_API_KEY`` (fallback ``ENGRAM_ADMIN_KEY``)."""
    url = base_url or os.environ.get("ENGRAM_URL") or DEFAULT_URL
    key = api_key or os.environ.get("ENGRAM_API_KEY") or os.environ.get("ENGRAM_ADMIN_KEY") or None
    return url.rstrip("/"), key


# --------------------------------------------------------------------------------------------- endpoints


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
    """Every endpoint of DESIGN.md section 2, as a ``Call``."""

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


def raise_for_problem(r: httpx.Response) -> None:
    """Raise the ``EngramAPIError`` subclass of a non-2xx answer, read from its problem+json body."""
    if r.is_success:
        return
    try:
        body = r.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    title = str(problem.get("title") or r.reason_phrase or "HTTP error")
    detail = str(problem.get("detail") or (r.text.strip()[:500] if not problem else "") or title)
    raise api_error(r.status_code, title, detail, problem)


def wait_cap(exc: ValidationError) -> int | None:
    """The server's longest ``?wait=`` when it refused ours (422 on query.wait), else None."""
    for e in exc.errors:
        if list(e.get("loc", [])) == ["query", "wait"]:
            found = re.search(r"at most (\d+)", str(e.get("msg", "")))
            return int(found.group(1)) if found else 0
    return None
