"""All SQL on turns: appending, reading (what a participant sees is the SQL function ``sees``,
migration 0007), and redacting."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter

from shared.kit.connector import fetch_all, fetch_one
from shared.kit.db import UnitOfWork
from shared.models import Turn
from shared.models.base import columns
from shared.models.states import OPEN_SQL, JobKind
from shared.turns.schemas import TurnCreate

# One statement, one round trip: the turns travel as one JSON array (one parameter, so the statement
# text is the same for every batch and psycopg converts its placeholders once), numbered in the order
# sent (WITH ORDINALITY); the session's counter moves in the same statement. A turn without a time of
# its own happened when it was appended.
APPEND = """
WITH appended AS (
    INSERT INTO turns (session_id, seq, speaker, content, visible_to, metadata, occurred_at)
    SELECT %(session_id)s, %(first)s + t.i - 1, t.speaker, t.content, t.visible_to, t.metadata,
           coalesce(t.occurred_at, now())
    FROM ROWS FROM (jsonb_to_recordset(CAST(%(turns)s AS jsonb)) AS (
             speaker text, content text, visible_to varchar(63)[], metadata jsonb, occurred_at timestamptz))
         WITH ORDINALITY AS t(speaker, content, visible_to, metadata, occurred_at, i)
    ORDER BY t.i
    RETURNING seq, created_at, occurred_at
), counted AS (
    UPDATE sessions SET turn_count = %(last)s, updated_at = now() WHERE id = %(session_id)s RETURNING updated_at
)
SELECT array_agg(created_at ORDER BY seq) AS created, array_agg(occurred_at ORDER BY seq) AS occurred,
       (SELECT updated_at FROM counted) AS updated_at
FROM appended
"""
"""Append turns as seq first to last, the session's new turn_count: session_id, first, last, turns (a JSON array); their times."""

_TURN_LIST = TypeAdapter(list[TurnCreate])


def append(db: UnitOfWork, session_id: int, turn_count: int, turns: list[TurnCreate]) -> list[tuple[datetime, datetime]]:
    """Insert the turns after the session's last (seq = turn_count + 1, …) and advance its
    ``turn_count`` and ``updated_at``; returns the turns' (created_at, occurred_at), in order.
    The caller holds the session's row lock (``turn_count`` is as read under it)."""
    if not turns:
        return []
    first, last = turn_count + 1, turn_count + len(turns)
    doc = _TURN_LIST.dump_json(turns).decode()
    row = fetch_one(db, APPEND, {"session_id": session_id, "first": first, "last": last, "turns": doc})
    assert row is not None  # an aggregate: always one row
    return list(zip(row.created, row.occurred, strict=True))


TRUNCATE_PENDING = f"""SELECT id FROM jobs WHERE session_id = %(session_id)s AND kind = '{JobKind.TRUNCATE.value}'
                        AND status IN {OPEN_SQL} LIMIT 1"""
"""A truncate of the session queued or running, which would delete turns appended now (param:
session_id): its id."""


def truncate_pending(db: UnitOfWork, session_id: int) -> str | None:
    """The id of a truncate of the session that is queued or running, if any."""
    row = fetch_one(db, TRUNCATE_PENDING, {"session_id": session_id})
    return None if row is None else str(row[0])


# The columns of a Turn, in the model's names, for ``Turn(**row._mapping)``.
TURN_COLUMNS = columns(Turn)

LIST_AFTER = f"""
    SELECT {TURN_COLUMNS} FROM turns
    WHERE session_id = %(session_id)s AND seq > %(after)s
      AND (CAST(%(viewer)s AS text) IS NULL OR sees(CAST(%(viewer)s AS text), visible_to, speaker))
    ORDER BY seq LIMIT %(limit)s
"""
"""A session's turns after a seq, in order: session_id, after, limit, viewer (only the turns it sees; None: all)."""

LATEST_SEEN = f"""
    SELECT {TURN_COLUMNS} FROM turns
    WHERE session_id = %(session_id)s AND seq > %(after)s AND sees(CAST(%(viewer)s AS text), visible_to, speaker)
    ORDER BY seq DESC LIMIT %(limit)s
"""
"""The latest turns a participant sees after a seq, newest first: session_id, viewer, after, limit."""

# Redacting a turn forgets what was derived from it, in the same statement: the insights of the
# session and the memories of its generation that cite the turn as evidence.
REDACT = """
    WITH redacted AS (
        UPDATE turns SET content = '', metadata = '{}'::jsonb, redacted_at = coalesce(redacted_at, now())
        WHERE session_id = %(session_id)s AND seq = %(seq)s
        RETURNING redacted_at),
    insights_forgotten AS (
        DELETE FROM insights WHERE session_id = %(session_id)s AND %(seq)s = ANY(evidence)
          AND EXISTS (SELECT FROM redacted)
        RETURNING id),
    memories_forgotten AS (
        DELETE FROM memories WHERE session_id = %(session_id)s AND generation = %(generation)s
          AND %(seq)s = ANY(evidence) AND EXISTS (SELECT FROM redacted)
        RETURNING id)
    SELECT (SELECT redacted_at FROM redacted), (SELECT count(*) FROM insights_forgotten),
           (SELECT count(*) FROM memories_forgotten)
"""
"""Erase a turn's content and metadata, keeping its seq, and delete the insights and memories citing
it (params: session_id, generation (the session's), seq): when it was first redacted (NULL: no such
turn), and how many insights and memories were deleted."""


def list_after(db: UnitOfWork, session_id: int, after: int, limit: int, *, viewer: str | None, after_seq: int) -> list[Turn]:
    """The session's turns after a seq, in order; only those ``viewer`` sees when one is given."""
    rows = fetch_all(db, LIST_AFTER, {"session_id": session_id, "after": max(after, after_seq), "limit": limit,
                                      "viewer": viewer})
    return [Turn(**r._mapping) for r in rows]


def latest_seen(db: UnitOfWork, session_id: int, viewer: str, after_seq: int, limit: int) -> list[Turn]:
    """The latest turns ``viewer`` sees after ``after_seq`` (its binding), newest first."""
    rows = fetch_all(db, LATEST_SEEN, {"session_id": session_id, "viewer": viewer, "after": after_seq, "limit": limit})
    return [Turn(**r._mapping) for r in rows]


def redact(db: UnitOfWork, session_id: int, generation: int, seq: int) -> tuple[datetime, int, int] | None:
    """Erase a turn and forget what cites it: (when it was first redacted, insights deleted, memories
    deleted), or None when there is no such turn."""
    row = fetch_one(db, REDACT, {"session_id": session_id, "generation": generation, "seq": seq})
    assert row is not None  # its select has no FROM: always one row
    return None if row[0] is None else (row[0], int(row[1]), int(row[2]))
