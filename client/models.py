"""Typed models of the Engram API, the client's errors, and its settings.

The response models are the server's own schemas (``shared.*.schemas``), shipped in the same
distribution, so client and API cannot drift apart. They are re-exported here under short names.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from shared.agents.schemas import AgentRead as Agent
from shared.agents.schemas import MemoryRead as Memory
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
    "FINISHED", "Agent", "AppendResult", "AuthError", "ConflictError", "EngramAPIError", "EngramConnectionError",
    "EngramError", "Insight", "Job", "JobKind", "JobLinks", "JobStatus", "JobTimeoutError", "Key", "KeyCreated",
    "Memory", "Namespace", "NotFoundError", "Page", "Participant", "ParticipantResult", "Progress", "Session",
    "Turn", "TurnIn", "ValidationError", "api_error", "resolve_settings",
]

DEFAULT_URL = "http://127.0.0.1:8000"


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
