"""Domain errors. Services raise these; the API maps each to one problem+json status."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "https://engram.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_body(status: int, title: str, detail: str, *, type_slug: str | None = None,
                 instance: str | None = None, **extra: Any) -> dict[str, Any]:
    """The problem details body (RFC 9457): the one place its shape is written. Used for HTTP
    answers and for a job's ``error``."""
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + (type_slug or str(status)), "title": title,
                            "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return body


class EngramError(Exception):
    status = 500
    title = "Internal error"
    type_slug = "internal"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class Unauthorized(EngramError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


UNKNOWN_KEY = "unknown or revoked key"  # the 401 of a namespace key that does not exist (any more)


class Forbidden(EngramError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(EngramError):
    status, title, type_slug = 404, "Not found", "not-found"


def absent(kind: str, name: str, namespace: str | None = None) -> NotFound:
    """The 404 of a resource that does not exist, in the namespace for one that lives in a namespace
    (a key asking for another namespace's resource gets this same answer)."""
    where = "" if namespace is None else f" in namespace '{namespace}'"
    return NotFound(f"{kind} '{name}' does not exist{where}")


class Conflict(EngramError):
    status, title, type_slug = 409, "Conflict", "conflict"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra=extra)


class SessionDeleted(Conflict):
    type_slug = "session-deleted"


class PreconditionFailed(EngramError):
    status, title, type_slug = 412, "Precondition failed", "precondition-failed"


class Unprocessable(EngramError):
    """422 with the invalid fields: ``errors=[{"loc": [...], "msg": ...}]``."""

    status, title, type_slug = 422, "Unprocessable content", "validation"

    def __init__(self, detail: str, *, loc: list[str | int] | None = None) -> None:
        super().__init__(detail, extra={"errors": [{"loc": loc or [], "msg": detail}]})
