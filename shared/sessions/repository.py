"""All SQL on sessions and their participants, and the rule of what a participant sees."""

from __future__ import annotations

import functools
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


# The reads of an integration's plan as psycopg statements (shared.kit.connector), over the run's
# job: ``run`` is an SQL relation of one row (session_id, snapshot_seq), empty when the job is not
# the run's. Run in the claim's round trip, they see what the claim saw or later.
def _compiled(condition: ColumnElement[bool]) -> str:
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    return str(condition.compile(dialect=dialect(), compile_kwargs={"literal_binds": True}))  # type: ignore[no-untyped-call]


@functools.cache
def participants_to_integrate_sql(run: str) -> str:
    """The session's participants, by name, with their watermarks: rows (participant id, agent id,
    name, description, watermark), the watermark as read (the move of the watermark is conditional
    on it)."""
    return f"""
        SELECT participants.id, agents.id, agents.name, agents.description, participants.last_integration_turn
        FROM {run} AS run JOIN participants ON participants.session_id = run.session_id
        JOIN agents ON agents.id = participants.agent_id
        ORDER BY agents.name"""


@functools.cache
def participant_agents_sql(run: str) -> str:
    """A relation (agent_id) of the agents of the session's participants."""
    return f"""(SELECT participants.agent_id FROM {run} AS run
               JOIN participants ON participants.session_id = run.session_id)"""


@functools.cache
def new_turns_seen_sql(run: str) -> str:
    """For every participant, the turns up to the run's snapshot it sees and has not integrated,
    redacted ones left out, in one read: rows (participant id, seq, speaker, content, occurred_at)."""
    # A lateral read per participant: its bounds on seq are then bounds of the session's index scan
    # whatever the statistics say (a join planned while sessions were small read every turn of a
    # 100,000-turn session, then filtered them).
    return f"""
        SELECT participants.id, turns.seq, turns.speaker, turns.content, turns.occurred_at
        FROM {run} AS run JOIN participants ON participants.session_id = run.session_id
        JOIN agents ON agents.id = participants.agent_id
        CROSS JOIN LATERAL (
            SELECT turns.seq, turns.speaker, turns.content, turns.occurred_at, turns.visible_to, turns.redacted_at
            FROM turns WHERE turns.session_id = participants.session_id
              AND {_compiled(not_yet_integrated())} AND turns.seq <= run.snapshot_seq
            ORDER BY turns.seq) AS turns
        WHERE ({_compiled(sees(Agent.name))}) AND turns.redacted_at IS NULL
        ORDER BY participants.id, turns.seq"""


@functools.cache
def earlier_turns_seen_sql(run: str, context: int) -> str:
    """For each participant with turns to integrate, the latest ``context`` turns it saw and
    integrated before (not redacted), oldest first: the context of its integration. ``context`` is
    written into the statement: the workers' statements get generic plans, and a LIMIT the planner
    cannot see made it sort all of a long session's turns."""
    return f"""
        SELECT participants.id, earlier.seq, earlier.speaker, earlier.content, earlier.occurred_at
        FROM {run} AS run JOIN participants ON participants.session_id = run.session_id
        JOIN agents ON agents.id = participants.agent_id
        CROSS JOIN LATERAL (
            SELECT turns.seq, turns.speaker, turns.content, turns.occurred_at FROM turns
            WHERE turns.session_id = participants.session_id
              AND turns.seq > participants.bound_after_seq AND turns.seq <= participants.last_integration_turn
              AND participants.last_integration_turn < run.snapshot_seq
              AND ({_compiled(sees(Agent.name))}) AND turns.redacted_at IS NULL
            ORDER BY turns.seq DESC LIMIT {int(context)}) AS earlier
        ORDER BY participants.id, earlier.seq"""


NONE_REDACTED = """NOT EXISTS (SELECT FROM turns WHERE session_id = %(session_id)s AND seq = ANY(CAST(%(seqs)s AS int[]))
    AND redacted_at IS NOT NULL)"""
"""A condition: none of these turns was redacted (params: session_id, seqs)."""

REDACTED_AMONG = """
    SELECT seq FROM turns WHERE session_id = %(session_id)s AND seq = ANY(CAST(%(seqs)s AS int[])) AND redacted_at IS NOT NULL
"""
"""Which of these turns were redacted since a run read them (params: session_id, seqs); rows (seq)."""

# The writes of an integration step, as parts of one statement (shared.jobs.repository.COMMIT_STEP);
# ``{when}`` is the condition, on the rest of that statement, under which they apply.
MOVE_WATERMARKS = """
    UPDATE participants p SET last_integration_turn = greatest(p.last_integration_turn, {snapshot})
    FROM {read} WHERE p.id = w.id AND p.last_integration_turn = w.watermark AND {when}
    RETURNING p.id, p.last_integration_turn"""
"""Participants' watermarks moved to the snapshot, each only if it is still as read (a participant
rebound meanwhile gets nothing): ``{read}`` is a relation ``w(id, watermark)``; ``{snapshot}`` the
run's snapshot."""
AS_READ = "unnest(CAST(%(participants)s AS bigint[]), CAST(%(watermarks)s AS int[])) AS w(id, watermark)"
"""MOVE_WATERMARKS's ``{read}`` from parameters (participants, watermarks)."""

INSERT_INSIGHTS = """
    INSERT INTO insights (session_id, agent_id, content, importance, evidence, job_id)
    SELECT %(session_id)s, %(agent_id)s, d.content, d.importance, d.evidence, %(id)s
    FROM jsonb_to_recordset(CAST(%(insights)s AS jsonb)) AS d(content text, importance smallint, evidence bigint[])
    WHERE {when}"""
"""A participant's new insights (params: session_id, agent_id, id (the job), insights as a JSON list)."""
