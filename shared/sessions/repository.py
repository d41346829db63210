"""All SQL on sessions and their participants, and the rule of what a participant sees."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, any_, delete, func, literal, or_, select, update
from sqlalchemy.orm import QueryableAttribute, Session

from shared.kit.db import rowcount
from shared.models import ActivitySession, Agent, Insight, Participant, Turn


def sees(agent_name: str | ColumnElement[str] | QueryableAttribute[str]) -> ColumnElement[bool]:
    """What a participant sees (DESIGN.md section 2, Turns): the turns addressed to everyone, to
    it, or spoken by it. Every read of a participant's turns applies this condition."""
    name = literal(agent_name) if isinstance(agent_name, str) else agent_name
    return or_(Turn.visible_to.is_(None), name == any_(Turn.visible_to), Turn.speaker == name)


def get(db: Session, namespace_id: int, name: str, *, lock: bool = False) -> ActivitySession | None:
    q = select(ActivitySession).where(ActivitySession.namespace_id == namespace_id, ActivitySession.name == name)
    if lock:
        q = q.with_for_update()
    return db.execute(q).scalar_one_or_none()


def list_after(db: Session, namespace_id: int, after: int | None, limit: int, include_deleted: bool) -> list[ActivitySession]:
    q = select(ActivitySession).where(ActivitySession.namespace_id == namespace_id).order_by(ActivitySession.id).limit(limit)
    if after is not None:
        q = q.where(ActivitySession.id > after)
    if not include_deleted:
        q = q.where(ActivitySession.deleted_at.is_(None))
    return list(db.execute(q).scalars())


def participant_names(db: Session, session_ids: list[int]) -> dict[int, list[str]]:
    rows = db.execute(
        select(Participant.session_id, Agent.name)
        .join(Agent, Agent.id == Participant.agent_id)
        .where(Participant.session_id.in_(session_ids))
        .order_by(Agent.name)
    )
    out: dict[int, list[str]] = {sid: [] for sid in session_ids}
    for sid, name in rows:
        out[sid].append(name)
    return out


def not_yet_integrated() -> ColumnElement[bool]:
    """A turn the participant has not integrated: appended after it was bound and after its
    watermark (``last_integration_turn``)."""
    return Turn.seq > func.greatest(Participant.last_integration_turn, Participant.bound_after_seq)


def lock(db: Session, session_id: int) -> None:
    """Lock the session row (waits for any write to it in flight, e.g. an append)."""
    db.execute(select(ActivitySession.id).where(ActivitySession.id == session_id).with_for_update())


def participants(db: Session, session_id: int) -> list[tuple[Participant, Agent, int]]:
    """Each participant with its agent and the count of the turns it sees and has not integrated."""
    pending = (
        select(func.count())
        .where(Turn.session_id == Participant.session_id, not_yet_integrated(), sees(Agent.name))
        .correlate(Participant, Agent)
        .scalar_subquery()
    )
    rows = db.execute(
        select(Participant, Agent, pending)
        .join(Agent, Agent.id == Participant.agent_id)
        .where(Participant.session_id == session_id)
        .order_by(Agent.name)
    )
    return [(p, a, n) for p, a, n in rows]


def participant(db: Session, session_id: int, agent_id: int) -> Participant | None:
    return db.execute(
        select(Participant).where(Participant.session_id == session_id, Participant.agent_id == agent_id)
    ).scalar_one_or_none()


def unbind(db: Session, session_id: int, agent_id: int) -> bool:
    res = db.execute(delete(Participant).where(Participant.session_id == session_id, Participant.agent_id == agent_id))
    return rowcount(res) > 0


def insights_after(db: Session, session_id: int, agent_id: int, after: int | None, limit: int) -> list[Insight]:
    q = (
        select(Insight)
        .where(Insight.session_id == session_id, Insight.agent_id == agent_id)
        .order_by(Insight.id)
        .limit(limit)
    )
    if after is not None:
        q = q.where(Insight.id > after)
    return list(db.execute(q).scalars())


def purge_expired(db: Session, now: datetime) -> int:
    res = db.execute(
        delete(ActivitySession).where(ActivitySession.deleted_at.is_not(None), ActivitySession.expire_time <= now)
    )
    return rowcount(res)


def truncate(db: Session, session_id: int) -> tuple[int, int]:
    """Reset the session's conversation; returns (turns deleted, new generation). Memories stay:
    they are the agents'."""
    turns = rowcount(db.execute(delete(Turn).where(Turn.session_id == session_id)))
    db.execute(delete(Insight).where(Insight.session_id == session_id))
    db.execute(
        update(Participant).where(Participant.session_id == session_id).values(last_integration_turn=0, bound_after_seq=0)
    )
    generation = db.execute(
        update(ActivitySession)
        .where(ActivitySession.id == session_id)
        .values(
            generation=ActivitySession.generation + 1,
            version=ActivitySession.version + 1,
            turn_count=0,
            data={},
            updated_at=func.now(),
        )
        .returning(ActivitySession.generation)
    ).scalar_one()
    return turns, generation


# --- integration ---------------------------------------------------------------------------------


REDACTED_AMONG = """
    SELECT seq FROM turns WHERE session_id = %(session_id)s AND seq = ANY(CAST(%(seqs)s AS int[])) AND redacted_at IS NOT NULL
"""
"""Which of these turns were redacted since a run read them (params: session_id, seqs); rows (seq)."""
