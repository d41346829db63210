"""Every error is application/problem+json (RFC 9457): type, title, status, detail, instance."""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from shared.errors import PROBLEM_MEDIA_TYPE, EngramError, problem_body

log = logging.getLogger("engram.api")


TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 412: "Precondition failed", 413: "Payload too large", 415: "Unsupported media type",
           422: "Unprocessable content", 428: "Precondition required", 500: "Internal error",
           503: "Service unavailable"}


class Problem(BaseModel):
    """Problem details (RFC 9457). A 422 also lists the invalid fields in `errors`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, Any]] | None = None


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response of problem details, for an operation's `responses`."""
    return {"model": Problem, "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


# Documented on every namespace route; the OpenAPI document is what clients and fuzzers rely on.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Malformed JSON."),
    401: problem_doc("Missing, unknown or revoked key."),
    403: problem_doc("The operation needs the admin key."),
    404: problem_doc("Not found, or not reachable with this key."),
    409: problem_doc("Conflict with the resource's state (e.g. a deleted session)."),
    413: problem_doc("The request body is too large."),
    422: problem_doc("Invalid input; `errors` lists the fields."),
    503: problem_doc("PostgreSQL is unreachable; retry later."),
}


def problem_response(request: Request, status: int, detail: str, *, type_slug: str | None = None,
                     title: str | None = None, extra: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body = problem_body(status, title or TITLES.get(status, "Error"), detail, type_slug=type_slug,
                        instance=request.url.path, **(extra or {}))
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method the request's path serves (RFC 9110 §15.5.6), from the OpenAPI document's
    paths: the app has one route per method of a path, so the Allow of the route that matched
    would name only its own."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = [(compile_path(path)[0], {m.upper() for m in operations})
                 for path, operations in request.app.openapi().get("paths", {}).items()]
        request.app.state.allow_table = table
    path = request.scope["path"]
    return ", ".join(sorted({m for regex, methods in table if regex.match(path) for m in methods}))


def _clean_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Keep what helps a client fix its request; never echo huge inputs back.
    out = []
    for e in errors[:50]:
        out.append({"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:500], "type": e.get("type", "")})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(EngramError)
    async def _domain(request: Request, exc: EngramError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(request, exc.status, exc.detail, type_slug=exc.type_slug, title=exc.title,
                                extra=exc.extra, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(list(exc.errors()))
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(request, 400, "the request body is not valid JSON", type_slug="malformed-json",
                                    extra={"errors": errors})
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
        return problem_response(request, 422, f"invalid request: {fields}", type_slug="validation",
                                extra={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            headers = {**(headers or {}), "Allow": allowed_methods(request) or (headers or {}).get("Allow", "")}
        return problem_response(request, exc.status_code, detail, headers=headers)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg_pool.PoolTimeout)
    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem_response(request, 503, "the database is unavailable; retry shortly", type_slug="unavailable",
                                headers={"Retry-After": "2"})

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return problem_response(request, 400, "the request body is nested too deeply", type_slug="malformed-json")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "internal error; it has been logged", type_slug="internal")
