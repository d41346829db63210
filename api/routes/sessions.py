from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response

from api.deps import DB, NamespaceDep, PageParams, SessionName, SettingsDep
from api.errors import problem_doc
from shared.schemas import Page
from shared.sessions import service
from shared.sessions.schemas import SessionCreate, SessionPatch, SessionRead

router = APIRouter(prefix="/v1/namespaces/{namespace}/sessions", tags=["sessions"])

_ETAG = {"ETag": {"description": "Version of the session; send it back in If-Match to PATCH safely."}}


def _respond(db: DB, s, response: Response) -> SessionRead:  # type: ignore[no-untyped-def]
    read = service.read(db, s)
    response.headers["ETag"] = service.etag(s)
    return read


@router.post("", response_model=SessionRead, status_code=201, responses={201: {"headers": _ETAG}})
def create_session(ns: NamespaceDep, db: DB, response: Response, body: SessionCreate | None = None) -> SessionRead:
    """Create a session; without a name it gets a generated one. 409 if the name is taken."""
    s = service.create(db, ns, body or SessionCreate())
    response.headers["Location"] = f"/v1/namespaces/{ns.name}/sessions/{s.name}"
    return _respond(db, s, response)


@router.get("", response_model=Page[SessionRead])
def list_sessions(ns: NamespaceDep, db: DB, page: PageParams,
                  include_deleted: Annotated[bool, Query(description="Also list soft-deleted sessions.")] = False,
                  ) -> Page[SessionRead]:
    """List sessions in creation order; soft-deleted ones only with `include_deleted=true`."""
    return service.list_(db, ns, include_deleted=include_deleted, cursor=page[1], limit=page[0])


@router.get("/{session}", response_model=SessionRead, responses={200: {"headers": _ETAG}})
def get_session(ns: NamespaceDep, session: SessionName, db: DB, response: Response) -> SessionRead:
    """Get a session, soft-deleted ones included (see `deleted_at`)."""
    return _respond(db, service.get(db, ns, session), response)


@router.patch("/{session}", response_model=SessionRead, responses={
    200: {"headers": _ETAG}, 412: problem_doc("`If-Match` names an older version: the session changed since.")},
              openapi_extra={"requestBody": {"content": {"application/merge-patch+json": {
                  "schema": {"$ref": "#/components/schemas/SessionPatch"}}}}})
def update_session(ns: NamespaceDep, session: SessionName, db: DB, response: Response,
                   body: Annotated[SessionPatch, Body()],
                   if_match: Annotated[str | None, Header(alias="If-Match", max_length=200,
                                                          description="ETag from a GET; 412 if it changed since.")] = None,
                   ) -> SessionRead:
    """Merge-patch (RFC 7396) `description` and `data`; with `If-Match`, only if unchanged since."""
    s = service.patch(db, ns, session, body, body.model_fields_set, if_match)
    return _respond(db, s, response)


@router.delete("/{session}", response_model=SessionRead)
def delete_session(ns: NamespaceDep, session: SessionName, db: DB, settings: SettingsDep,
                   response: Response) -> SessionRead:
    """Soft-delete: sets `deleted_at` and `expire_time` (purge after ENGRAM_SESSION_RETENTION_DAYS)."""
    s = service.delete(db, ns, session, timedelta(days=settings.session_retention_days))
    return _respond(db, s, response)


@router.post("/{session}/undelete", response_model=SessionRead)
def undelete_session(ns: NamespaceDep, session: SessionName, db: DB, response: Response) -> SessionRead:
    """Restore a soft-deleted session before its `expire_time`; 409 if it is not deleted."""
    return _respond(db, service.undelete(db, ns, session), response)
