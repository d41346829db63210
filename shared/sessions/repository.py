"""All SQL on sessions and their participants. What a participant sees, and which turns it has not
integrated, are the SQL functions ``sees`` and ``not_yet_integrated`` (migration 0007)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.kit.connector import execute, fetch_all, fetch_one
from shared.kit.db import Record, UnitOfWork
from shared.models import ActivitySession, Agent, Insight, Participant
from shared.models.base import columns, fields

_SESSION = columns(ActivitySession, "s")
"""Fragment: every column of a session (aliased ``s``), as the model ``ActivitySession`` has them."""

_PARTICIPANT = columns(Participant, "p")
"""Fragment: every column of a participant (aliased ``p``), as the model ``Participant`` has them."""

_AGENT = columns(Agent, "a")
"""Fragment: every column of an agent (aliased ``a``), as the model ``Agent`` has them."""

_INSIGHT = columns(Insight, "i")
"""Fragment: every column of an insight (aliased ``i``), as the model ``Insight`` has them."""

# The models' names of the columns of _PARTICIPANT and _AGENT, in order: a row of PARTICIPANTS holds both.
_PARTICIPANT_FIELDS = fields(Participant)
_AGENT_FIELDS = fields(Agent)


def _session(row: Record | None) -> ActivitySession | None:
    return None if row is None else ActivitySession(**row._mapping)


# --- sessions ------------------------------------------------------------------------------------

GET = f"SELECT {_SESSION} FROM sessions s WHERE s.namespace_id = %(namespace_id)s AND s.name = %(name)s"
"""A session of a namespace, deleted or not (params: namespace_id, name)."""
GET_LOCKED = GET + " FOR UPDATE"
"""GET, the session's row locked for the rest of the transaction (writes to it wait)."""


def get(db: UnitOfWork, namespace_id: int, name: str, *, lock: bool = False) -> ActivitySession | None:
    return _session(fetch_one(db, GET_LOCKED if lock else GET, {"namespace_id": namespace_id, "name": name}))


LIST_AFTER = f"""
    SELECT {_SESSION} FROM sessions s
    WHERE s.namespace_id = %(namespace_id)s AND (CAST(%(after)s AS bigint) IS NULL OR s.id > %(after)s)
      AND (CAST(%(include_deleted)s AS boolean) OR s.deleted_at IS NULL)
    ORDER BY s.id LIMIT %(limit)s
"""
"""A namespace's sessions in creation order (params: namespace_id, after (an id or NULL), limit, include_deleted)."""


def list_after(db: UnitOfWork, namespace_id: int, after: int | None, limit: int, include_deleted: bool) -> list[ActivitySession]:
    rows = fetch_all(db, LIST_AFTER, {"namespace_id": namespace_id, "after": after, "limit": limit,
                                      "include_deleted": include_deleted})
    return [ActivitySession(**row._mapping) for row in rows]


CREATE = f"""
    INSERT INTO sessions AS s (namespace_id, name, description, data, turn_count, generation, version)
    VALUES (%(namespace_id)s, %(name)s, %(description)s, CAST(%(data)s AS jsonb), 0, 1, 1)
    ON CONFLICT (namespace_id, name) DO NOTHING
    RETURNING {_SESSION}
"""
"""Create a session (params: namespace_id, name, description, data as JSON): its row; none if the name is taken."""


def create(db: UnitOfWork, namespace_id: int, name: str, description: str, data: dict[str, Any]) -> ActivitySession | None:
    """The new session, or None when the name is taken in the namespace."""
    return _session(fetch_one(db, CREATE, {"namespace_id": namespace_id, "name": name, "description": description,
                                           "data": json.dumps(data)}))


PATCH = f"""
    UPDATE sessions s
    SET description = coalesce(CAST(%(description)s AS text), s.description),
        data = coalesce(CAST(%(data)s AS jsonb), s.data), version = s.version + 1, updated_at = now()
    WHERE s.id = %(id)s
    RETURNING {_SESSION}
"""
"""Set a session's description and data as its new version (params: id, description, data as JSON; NULL keeps one)."""


def patch(db: UnitOfWork, session_id: int, description: str | None, data: dict[str, Any] | None) -> ActivitySession:
    """Set the session's description and data (None: unchanged) as its new version."""
    row = fetch_one(db, PATCH, {"id": session_id, "description": description,
                                "data": None if data is None else json.dumps(data)})
    assert row is not None  # the caller holds the session's row lock
    return ActivitySession(**row._mapping)


SOFT_DELETE = f"""
    UPDATE sessions s
    SET deleted_at = now(), expire_time = now() + CAST(%(retention)s AS interval), version = s.version + 1,
        updated_at = now()
    WHERE s.id = %(id)s
    RETURNING {_SESSION}
"""
"""Soft-delete a session, to be purged after the retention (params: id, retention): its row."""

UNDELETE = f"""
    UPDATE sessions s
    SET deleted_at = NULL, expire_time = NULL, version = s.version + 1, updated_at = now()
    WHERE s.id = %(id)s
    RETURNING {_SESSION}
"""
"""Restore a soft-deleted session (param: id): its row."""


def soft_delete(db: UnitOfWork, session_id: int, retention: timedelta) -> ActivitySession:
    row = fetch_one(db, SOFT_DELETE, {"id": session_id, "retention": retention})
    assert row is not None  # the caller holds the session's row lock
    return ActivitySession(**row._mapping)


def undelete(db: UnitOfWork, session_id: int) -> ActivitySession:
    row = fetch_one(db, UNDELETE, {"id": session_id})
    assert row is not None  # the caller holds the session's row lock
    return ActivitySession(**row._mapping)


TOUCH = "UPDATE sessions SET version = version + 1, updated_at = now() WHERE id = %(id)s"
"""A new version of a session, its resource changed (its participants) (param: id)."""


def touch(db: UnitOfWork, session_id: int) -> None:
    execute(db, TOUCH, {"id": session_id})


LOCK = "SELECT id FROM sessions WHERE id = %(id)s FOR UPDATE"
"""Lock a session's row for the rest of the transaction (param: id)."""


def lock(db: UnitOfWork, session_id: int) -> None:
    """Lock the session row (waits for any write to it in flight, e.g. an append)."""
    fetch_one(db, LOCK, {"id": session_id})


PURGE_EXPIRED = "DELETE FROM sessions WHERE deleted_at IS NOT NULL AND expire_time <= %(now)s"
"""Delete for good the soft-deleted sessions whose expire_time has come (param: now)."""


def purge_expired(db: UnitOfWork, now: datetime) -> int:
    return execute(db, PURGE_EXPIRED, {"now": now})


TRUNCATE = """
    WITH turns_deleted AS (DELETE FROM turns WHERE session_id = %(id)s RETURNING seq),
    insights_deleted AS (DELETE FROM insights WHERE session_id = %(id)s),
    watermarks AS (UPDATE participants SET last_integration_turn = 0, bound_after_seq = 0 WHERE session_id = %(id)s)
    UPDATE sessions s
    SET generation = s.generation + 1, version = s.version + 1, turn_count = 0, data = '{}'::jsonb, updated_at = now()
    WHERE s.id = %(id)s
    RETURNING (SELECT count(*) FROM turns_deleted) AS turns, s.generation
"""
"""Reset a session's conversation, its next generation (param: id): its turns and insights deleted, watermarks at 0."""


def truncate(db: UnitOfWork, session_id: int) -> tuple[int, int]:
    """Reset the session's conversation; returns (turns deleted, new generation). Memories stay:
    they are the agents'."""
    row = fetch_one(db, TRUNCATE, {"id": session_id})
    assert row is not None  # the caller holds the session's row lock
    return int(row.turns), int(row.generation)


# --- participants --------------------------------------------------------------------------------

PARTICIPANT_NAMES = """
    SELECT p.session_id, a.name FROM participants p JOIN agents a ON a.id = p.agent_id
    WHERE p.session_id = ANY(CAST(%(session_ids)s AS bigint[]))
    ORDER BY a.name
"""
"""The names of the participants of sessions, by name (param: session_ids); rows (session_id, name)."""


def participant_names(db: UnitOfWork, session_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {sid: [] for sid in session_ids}
    if session_ids:
        for sid, name in fetch_all(db, PARTICIPANT_NAMES, {"session_ids": list(session_ids)}):
            out[sid].append(name)
    return out


PARTICIPANTS = f"""
    SELECT {_PARTICIPANT}, {_AGENT},
           (SELECT count(*) FROM turns t
            WHERE t.session_id = p.session_id
              AND not_yet_integrated(t.seq, p.last_integration_turn, p.bound_after_seq)
              AND sees(a.name, t.visible_to, t.speaker)) AS pending
    FROM participants p JOIN agents a ON a.id = p.agent_id
    WHERE p.session_id = %(session_id)s
    ORDER BY a.name
"""
"""A session's participants by name, each with its agent and its turns pending (seen, not integrated) (param: session_id)."""


def participants(db: UnitOfWork, session_id: int) -> list[tuple[Participant, Agent, int]]:
    """Each participant with its agent and the count of the turns it sees and has not integrated."""
    n, m = len(_PARTICIPANT_FIELDS), len(_PARTICIPANT_FIELDS) + len(_AGENT_FIELDS)
    return [(Participant(**dict(zip(_PARTICIPANT_FIELDS, row[:n], strict=True))),
             Agent(**dict(zip(_AGENT_FIELDS, row[n:m], strict=True))), int(row[m]))
            for row in fetch_all(db, PARTICIPANTS, {"session_id": session_id})]


PARTICIPANT = f"SELECT {_PARTICIPANT} FROM participants p WHERE p.session_id = %(session_id)s AND p.agent_id = %(agent_id)s"
"""An agent's participation in a session (params: session_id, agent_id)."""


def participant(db: UnitOfWork, session_id: int, agent_id: int) -> Participant | None:
    row = fetch_one(db, PARTICIPANT, {"session_id": session_id, "agent_id": agent_id})
    return None if row is None else Participant(**row._mapping)


BIND = """
    INSERT INTO participants (session_id, agent_id, bound_after_seq, last_integration_turn)
    SELECT s.id, %(agent_id)s, s.turn_count, s.turn_count FROM sessions s WHERE s.id = %(session_id)s
    ON CONFLICT (session_id, agent_id) DO NOTHING
"""
"""Bind an agent to a session, to see the turns appended from now on (params: session_id, agent_id); 0 rows if bound."""


def bind(db: UnitOfWork, session_id: int, agent_id: int) -> bool:
    """Bind the agent to the session; False when it was bound already. The caller holds the session's row lock."""
    return execute(db, BIND, {"session_id": session_id, "agent_id": agent_id}) > 0


UNBIND = "DELETE FROM participants WHERE session_id = %(session_id)s AND agent_id = %(agent_id)s"
"""Unbind an agent from a session (params: session_id, agent_id)."""


def unbind(db: UnitOfWork, session_id: int, agent_id: int) -> bool:
    return execute(db, UNBIND, {"session_id": session_id, "agent_id": agent_id}) > 0


INSIGHTS_AFTER = f"""
    SELECT {_INSIGHT} FROM insights i
    WHERE i.session_id = %(session_id)s AND i.agent_id = %(agent_id)s
      AND (CAST(%(after)s AS bigint) IS NULL OR i.id > %(after)s)
    ORDER BY i.id LIMIT %(limit)s
"""
"""A participant's insights in a session, oldest first (params: session_id, agent_id, after (an id or NULL), limit)."""


def insights_after(db: UnitOfWork, session_id: int, agent_id: int, after: int | None, limit: int) -> list[Insight]:
    rows = fetch_all(db, INSIGHTS_AFTER, {"session_id": session_id, "agent_id": agent_id, "after": after,
                                          "limit": limit})
    return [Insight(**row._mapping) for row in rows]


# --- integration ---------------------------------------------------------------------------------


REDACTED_AMONG = """
    SELECT seq FROM turns WHERE session_id = %(session_id)s AND seq = ANY(CAST(%(seqs)s AS int[])) AND redacted_at IS NOT NULL
"""
"""Which of these turns were redacted since a run read them (params: session_id, seqs); rows (seq)."""
