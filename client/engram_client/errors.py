"""The errors the client raises, and how a non-2xx answer becomes one of them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from engram_client.models import Job


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


class JobTimeoutError(EngramError, TimeoutError):
    """``wait(timeout=…)`` ran out before the job finished. The job goes on; ``job`` is its last state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g}s")
        self.job, self.timeout = job, timeout


class WebhookVerificationError(EngramError):
    """A request claiming to be an Engram webhook failed verification (``engram_client.verify``):
    a header is missing or malformed, the signature does not match the body and the secret, or the
    timestamp is more than five minutes away from now. Answer it with a 4xx and do not act on it."""


_ERRORS: dict[int, type[EngramAPIError]] = {
    401: AuthError, 403: AuthError, 404: NotFoundError, 409: ConflictError, 422: ValidationError,
}


def api_error(status: int, title: str, detail: str, problem: dict[str, Any] | None = None) -> EngramAPIError:
    """The error class for ``status`` (``EngramAPIError`` itself for the others)."""
    return _ERRORS.get(status, EngramAPIError)(status, title, detail, problem)


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
