"""Activity sessions: lifecycle (create, patch, soft delete, undelete, purge) and participants."""

from __future__ import annotations

import copy
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import json_merge_patch

from shared.agents import service as agents
from shared.errors import Conflict, NotFound, PreconditionFailed, SessionDeleted, Unprocessable, absent
from shared.kit.db import UnitOfWork
from shared.models import ActivitySession, Namespace
from shared.schemas import MAX_JSON_BYTES, Page, check_json_object, page_of
from shared.sessions import repository as repo
from shared.sessions.schemas import InsightRead, ParticipantRead, SessionCreate, SessionPatch, SessionRead


def etag(s: ActivitySession) -> str:
    return f'"{s.id}-{s.version}"'


def to_read(s: ActivitySession, participants: list[str]) -> SessionRead:
    return SessionRead(
        name=s.name, description=s.description, data=s.data, participants=participants, turn_count=s.turn_count,
        generation=s.generation, created_at=s.created_at, updated_at=s.updated_at, deleted_at=s.deleted_at,
        expire_time=s.expire_time,
    )


def read(db: UnitOfWork, s: ActivitySession) -> SessionRead:
    """The session as read, with its participants (``s`` as returned by this module: its row as stored)."""
    return to_read(s, repo.participant_names(db, [s.id])[s.id])


def get(db: UnitOfWork, ns: Namespace, name: str, *, lock: bool = False) -> ActivitySession:
    s = repo.get(db, ns.id, name, lock=lock)
    if s is None:
        raise absent("session", name, ns.name)
    return s


def get_live(db: UnitOfWork, ns: Namespace, name: str) -> ActivitySession:
    """The session, locked for this transaction; 409 when it is soft-deleted (writes refuse it)."""
    s = get(db, ns, name, lock=True)
    if s.deleted_at is not None:
        raise SessionDeleted(f"session '{name}' is deleted; undelete it before writing to it")
    return s


def create(db: UnitOfWork, ns: Namespace, body: SessionCreate) -> ActivitySession:
    name = body.name or f"session-{secrets.token_hex(6)}"
    s = repo.create(db, ns.id, name, body.description, body.data)
    if s is None:
        raise Conflict(f"session '{name}' already exists in namespace '{ns.name}'")
    return s


def list_(db: UnitOfWork, ns: Namespace, *, include_deleted: bool, cursor: str | None, limit: int) -> Page[SessionRead]:
    page = page_of(lambda after, n: repo.list_after(db, ns.id, after, n, include_deleted), cursor, int, limit,
                   item=lambda r: r, position=lambda r: r.id)
    names = repo.participant_names(db, [r.id for r in page.items])
    return Page[SessionRead](items=[to_read(r, names[r.id]) for r in page.items], next_cursor=page.next_cursor)


def patch(db: UnitOfWork, ns: Namespace, name: str, body: SessionPatch, fields: set[str],
          if_match: str | None) -> ActivitySession:
    s = get_live(db, ns, name)
    if if_match is not None and if_match.strip() not in ("*", etag(s)):
        raise PreconditionFailed(f"session '{name}' changed since ETag {if_match}; its ETag is now {etag(s)}")
    description = (body.description or "") if "description" in fields else None
    data: dict[str, Any] | None = None
    if "data" in fields:
        # The merge edits its target in place, nested objects included: it works on a deep copy.
        merged = {} if body.data is None else json_merge_patch.merge(copy.deepcopy(s.data), body.data)
        try:
            data = check_json_object(merged)
        except ValueError as exc:
            raise Unprocessable(f"the merged data {exc} (limit {MAX_JSON_BYTES} bytes)", loc=["body", "data"]) from None
    return repo.patch(db, s.id, description, data)


def delete(db: UnitOfWork, ns: Namespace, name: str, retention: timedelta) -> ActivitySession:
    """Soft delete (AIP-164). Deleting a deleted session changes nothing and returns it."""
    s = get(db, ns, name, lock=True)
    return repo.soft_delete(db, s.id, retention) if s.deleted_at is None else s


def undelete(db: UnitOfWork, ns: Namespace, name: str) -> ActivitySession:
    s = get(db, ns, name, lock=True)
    if s.deleted_at is None:
        raise Conflict(f"session '{name}' is not deleted")
    return repo.undelete(db, s.id)


def purge_expired(db: UnitOfWork) -> int:
    return repo.purge_expired(db, datetime.now(UTC))


# --- participants -------------------------------------------------------------------------------


def participant_read(db: UnitOfWork, session_id: int, agent_name: str) -> ParticipantRead:
    for p, a, pending in repo.participants(db, session_id):
        if a.name == agent_name:
            return ParticipantRead(name=a.name, bound_at=p.bound_at, last_integration_turn=p.last_integration_turn,
                                   pending_turns=pending)
    raise NotFound(f"agent '{agent_name}' is not a participant")


def bind(db: UnitOfWork, ns: Namespace, name: str, agent_name: str) -> tuple[ParticipantRead, bool]:
    """Bind an agent; it will see the turns appended from now on. Binding a bound agent changes nothing."""
    s = get_live(db, ns, name)
    agent = agents.get(db, ns, agent_name)
    created = repo.bind(db, s.id, agent.id)
    if created:
        repo.touch(db, s.id)
    return participant_read(db, s.id, agent_name), created


def unbind(db: UnitOfWork, ns: Namespace, name: str, agent_name: str) -> None:
    s = get_live(db, ns, name)
    agent = agents.get(db, ns, agent_name)
    if not repo.unbind(db, s.id, agent.id):
        raise NotFound(f"agent '{agent_name}' is not a participant of session '{name}'")
    repo.touch(db, s.id)


def participants(db: UnitOfWork, ns: Namespace, name: str) -> Page[ParticipantRead]:
    s = get(db, ns, name)
    items = [
        ParticipantRead(name=a.name, bound_at=p.bound_at, last_integration_turn=p.last_integration_turn, pending_turns=n)
        for p, a, n in repo.participants(db, s.id)
    ]
    return Page(items=items, next_cursor=None)


def insights(db: UnitOfWork, ns: Namespace, name: str, agent_name: str, *, cursor: str | None, limit: int) -> Page[InsightRead]:
    s = get(db, ns, name)
    agent = agents.get(db, ns, agent_name)
    return page_of(lambda after, n: repo.insights_after(db, s.id, agent.id, after, n), cursor, int, limit,
                   item=InsightRead.model_validate, position=lambda r: r.id)
