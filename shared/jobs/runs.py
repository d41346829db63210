"""All SQL of a job's run, in the order a run meets it: the claim and the reads of an integration's
plan, the fence and the heartbeat, the integration step, and the statements that finish or re-queue
a job. The words (head, run, token, fence) are those of docs/jobs.md.

An integration's statements read and write the tables of several domains (participants, turns,
insights, memories, webhook deliveries). Each is written out here whole, top to bottom; the parts
two of them share are named fragments of this file, and the rules they apply on turns are the SQL
functions ``sees`` and ``not_yet_integrated`` (migration 0007). A write made by a run carries its
fencing token (the job's ``attempts`` when the run claimed it).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import psycopg

from shared.jobs.repository import is_head
from shared.kit import connector
from shared.kit.db import UnitOfWork
from shared.models.states import JobKind, JobStatus

QUEUED, RUNNING, SUCCEEDED = JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.SUCCEEDED.value
INTEGRATE, TRUNCATE = JobKind.INTEGRATE.value, JobKind.TRUNCATE.value


# --- the claim ---------------------------------------------------------------------------------


@dataclass
class Run:
    """What a run needs to know about its job: read once, by the claim."""

    id: str
    session_id: int
    session_name: str
    kind: str
    token: int  # the job's attempts when this run claimed it: its fencing token
    generation: int  # the session's generation at the claim: a truncate since then supersedes the run
    snapshot_seq: int  # the session's last seq at the claim: the run integrates nothing after it
    result: dict[str, Any] | None


CLAIM = f"""
    UPDATE jobs j
    SET status = '{RUNNING}', attempts = j.attempts + 1, lease_owner = %(owner)s,
        lease_expires_at = now() + make_interval(secs => %(lease)s), started_at = coalesce(j.started_at, now()),
        run_generation = s.generation, snapshot_seq = s.turn_count, progress_completed = 0,
        progress_total = CASE WHEN j.kind = '{TRUNCATE}' THEN 1
                              ELSE (SELECT count(*) FROM participants p WHERE p.session_id = j.session_id) END
    FROM (SELECT s.id, s.generation, s.turn_count FROM sessions s
          WHERE s.id = (SELECT q.session_id FROM jobs q WHERE q.id = %(id)s) FOR SHARE) s
    WHERE j.id = %(id)s AND s.id = j.session_id AND j.status = '{QUEUED}' AND {is_head("j")}
    RETURNING j.id, j.session_id, j.session_name, j.kind, j.attempts, j.run_generation, j.snapshot_seq, j.result
"""
"""Start a run (params: id, owner, lease in seconds): the row of a ``Run``, or none.

The claim share-locks the session row, which an accept (LOCK_SESSION) and an append lock for
update, and reads the session's generation and last seq from the row it locked, its newest
version. So an accept that coalesces a request into this job either commits before the claim reads
the last seq (the snapshot then holds every turn appended before that request) or waits for the
claim to commit and then sees the job running, and creates a new one."""


def claim_params(job_id: str, owner: str, lease: timedelta) -> dict[str, Any]:
    return {"id": job_id, "owner": owner, "lease": lease.total_seconds()}


def claimed(row: tuple[Any, ...] | None) -> Run | None:
    """The run of CLAIM's row, or None when the job was not claimed (the worker's claim:
    shared.jobs.effects.claim_integration)."""
    return None if row is None else Run(*row)


# --- the plan of an integration ------------------------------------------------------------------
# Read in the claim's round trip, right after CLAIM, over ``run``: the job's session and snapshot
# once the claim made it this run's (no row when it did not). They see what the claim saw or later.

_CLAIMED = f"""(SELECT session_id, snapshot_seq FROM jobs WHERE id = %(id)s AND status = '{RUNNING}'
                AND lease_owner = %(owner)s AND kind = '{INTEGRATE}')"""

_PEOPLE = """
    SELECT participants.id, agents.id, agents.name, agents.description, participants.last_integration_turn
    FROM run JOIN participants ON participants.session_id = run.session_id
    JOIN agents ON agents.id = participants.agent_id
    ORDER BY agents.name"""
"""Fragment: the session's participants, by name: (participant id, agent id, name, description,
watermark), the watermark as read (its move is conditional on it)."""

# A lateral read per participant: its bounds on seq are then bounds of the session's index scan
# whatever the statistics say (a join planned while sessions were small read every turn of a
# 100,000-turn session, then filtered them).
_NEW_TURNS = """
    SELECT participants.id, turns.seq, turns.speaker, turns.content, turns.occurred_at
    FROM run JOIN participants ON participants.session_id = run.session_id
    JOIN agents ON agents.id = participants.agent_id
    CROSS JOIN LATERAL (
        SELECT turns.seq, turns.speaker, turns.content, turns.occurred_at FROM turns
        WHERE turns.session_id = participants.session_id AND turns.seq <= run.snapshot_seq
          AND not_yet_integrated(turns.seq, participants.last_integration_turn, participants.bound_after_seq)
          AND sees(agents.name, turns.visible_to, turns.speaker) AND turns.redacted_at IS NULL
        ORDER BY turns.seq) AS turns
    ORDER BY participants.id, turns.seq"""
"""Fragment: for every participant, the turns up to the snapshot it sees and has not integrated,
redacted ones left out: (participant id, seq, speaker, content, occurred_at)."""

PARTICIPANTS_TO_INTEGRATE = f"WITH run AS {_CLAIMED} {_PEOPLE}"
"""The claimed integration's participants (params: id, owner): rows of ``_PEOPLE``."""

NEW_TURNS_SEEN = f"WITH run AS {_CLAIMED} {_NEW_TURNS}"
"""What each participant of the claimed integration has to integrate (params: id, owner)."""


@functools.cache
def earlier_turns_seen(context: int) -> str:
    """For each participant with turns to integrate, the latest ``context`` turns it saw and
    integrated before (not redacted), oldest first: the context of its integration (params: id,
    owner). ``context`` (a setting) is written into the statement: the workers' statements get
    generic plans, and a LIMIT the planner cannot see made it sort all of a long session's turns."""
    return f"""
    WITH run AS {_CLAIMED}
    SELECT participants.id, earlier.seq, earlier.speaker, earlier.content, earlier.occurred_at
    FROM run JOIN participants ON participants.session_id = run.session_id
    JOIN agents ON agents.id = participants.agent_id
    CROSS JOIN LATERAL (
        SELECT turns.seq, turns.speaker, turns.content, turns.occurred_at FROM turns
        WHERE turns.session_id = participants.session_id
          AND turns.seq > participants.bound_after_seq AND turns.seq <= participants.last_integration_turn
          AND participants.last_integration_turn < run.snapshot_seq
          AND sees(agents.name, turns.visible_to, turns.speaker) AND turns.redacted_at IS NULL
        ORDER BY turns.seq DESC LIMIT {int(context)}) AS earlier
    ORDER BY participants.id, earlier.seq"""


WINDOW_DELTAS = f"""
    WITH run AS {_CLAIMED}
    SELECT people.agent_id, m.id, m.kind, m.text
    FROM (SELECT DISTINCT participants.agent_id FROM run JOIN participants ON participants.session_id = run.session_id)
         AS people
    LEFT JOIN unnest(CAST(%(agents)s AS bigint[]), CAST(%(highs)s AS bigint[])) AS kept(agent_id, high)
         ON kept.agent_id = people.agent_id
    CROSS JOIN LATERAL (
        SELECT id, kind, coalesce(speaker || ': ', '') || content AS text FROM memories
        WHERE agent_id = people.agent_id AND id > coalesce(kept.high, 0) ORDER BY id DESC LIMIT %(window)s) m
"""
"""For the agents of the claimed integration's participants, read without their lock: the memories
after the newest one the process kept of each (params: id, owner; agents and highs, the kept
windows' agent ids and newest ids; window): rows (agent_id, id, kind, text), newest first."""


# --- the fence and the heartbeat ---------------------------------------------------------------


class Fence(NamedTuple):
    generation: int  # the session's generation now: another than the run's means a truncate came between
    cancel_requested: bool


LOCK_RUN = f"""
    SELECT s.generation, j.cancel_requested
    FROM jobs j JOIN sessions s ON s.id = j.session_id
    WHERE j.id = %(id)s AND j.attempts = %(token)s AND j.status = '{RUNNING}'
    FOR UPDATE OF j FOR SHARE OF s
"""
"""The fence (params: id, token): one row (session generation, cancel requested), or none."""


def fenced(row: tuple[Any, ...] | None) -> Fence | None:
    return None if row is None else Fence(row[0], bool(row[1]))


def lock_run(db: UnitOfWork, job_id: str, token: int) -> Fence | None:
    """The fence, taken before any write of a run, in one round trip: lock the job row if this run
    still owns it, and share-lock its session so no truncate commits in between. None when the
    job is no longer the run's (re-queued after a lost lease, finished, cancelled, or purged)."""
    return fenced(connector.fetch_one(db, LOCK_RUN, {"id": job_id, "token": token}))


HEARTBEAT = f"""
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
    WHERE id = %(id)s AND attempts = %(token)s AND status = '{RUNNING}'
    RETURNING cancel_requested
"""
"""Extend the lease (params: id, token, lease in seconds): one row (cancel requested) while the run's."""


# --- finishing a job -----------------------------------------------------------------------------

# The channels a job's finish is notified on: the API's long-polls listen to the first; the
# scheduler, which sends webhook deliveries, to the second.
JOBS_CHANNEL = "engram_jobs"
DELIVERIES_CHANNEL = "engram_deliveries"


def listen_to_finished_jobs(conn: psycopg.Connection[Any]) -> None:
    """Subscribe a (psycopg, autocommit) connection to the notifications of finished jobs."""
    conn.execute(f"LISTEN {JOBS_CHANNEL}")


# What every statement that finishes jobs ends with, over its CTE ``done`` of the finished job rows
# (id, namespace_id, status): the outbox, a CTE writing their webhook deliveries in the same
# transaction as the finish, and a select expression that notifies at commit the API's long-polls
# and, when deliveries were written, the scheduler that sends them.
_OUTBOX = """outbox AS (
        INSERT INTO webhook_deliveries (id, webhook_id, job_id, event)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), w.id, done.id, 'job.' || done.status
        FROM done JOIN webhooks w ON w.namespace_id = done.namespace_id AND 'job.' || done.status = ANY(w.events)
        RETURNING id)"""
"""Fragment: one delivery per endpoint of the job's namespace subscribed to its final status.
Written with no message sent (``dispatched_at`` NULL): the scheduler, woken at the commit by the
notification, sends them at once (shared.webhooks.repository.due); a delivery written as "just
sent" would wait for ENGRAM_JOB_REDISPATCH_SECONDS, as if its message had been lost."""
_NOTIFY = (f"(SELECT count(*) FROM (SELECT pg_notify('{JOBS_CHANNEL}', id) FROM done) n)"
           f" + (SELECT count(*) FROM (SELECT pg_notify('{DELIVERIES_CHANNEL}', id) FROM done"
           " WHERE EXISTS (SELECT FROM outbox)) d)")
"""Fragment: the notifications of the finished jobs, as a count."""

FINISH = f"""
    WITH done AS (
        UPDATE jobs SET status = %(status)s, result = coalesce(CAST(%(result)s AS jsonb), result),
               error = CAST(%(error)s AS jsonb),
               progress_completed = coalesce(CAST(%(completed)s AS integer), progress_completed),
               finished_at = now(), lease_expires_at = NULL
        WHERE id = %(id)s RETURNING id, namespace_id, status
    ),
    {_OUTBOX}
    SELECT {_NOTIFY}
"""
"""Finish a job (params: id, status, result, error and completed, each may be NULL), write its
webhook deliveries and wake its long-polls."""


def finish(db: UnitOfWork, job_id: str, status: JobStatus, *, result: dict[str, Any] | None = None,
           error: dict[str, Any] | None = None, completed: int | None = None) -> None:
    """Finish a job (locked by the caller), write its webhook deliveries (the outbox) and wake
    its long-polls, in one statement. The notifications are delivered at commit: the API's LISTEN
    wakes the requests waiting on the job, the scheduler's sends the new deliveries."""
    connector.execute(db, FINISH, {"id": job_id, "status": status.value, "completed": completed,
                                   "result": None if result is None else json.dumps(result),
                                   "error": None if error is None else json.dumps(error)})


# With nothing new for any participant, an integration is done in its claim's round trip: this
# statement, run right after CLAIM in the same transaction (the job row is the run's, locked by it;
# no truncate can come between, the job being its session's head), moves the watermarks, finishes
# the job with its result and wakes its long-polls. A job with the result of an earlier attempt
# goes the usual way (its result adds up, see shared.jobs.effects).
FINISH_IF_IDLE = f"""
    WITH run AS MATERIALIZED (
        SELECT id, session_id, snapshot_seq FROM jobs WHERE id = %(id)s AND status = '{RUNNING}'
        AND lease_owner = %(owner)s AND kind = '{INTEGRATE}' AND result IS NULL),
    people(id, agent_id, name, description, watermark) AS MATERIALIZED ({_PEOPLE}),
    idle AS MATERIALIZED (SELECT run.id, run.snapshot_seq FROM run WHERE NOT EXISTS ({_NEW_TURNS})),
    moved AS MATERIALIZED (
        UPDATE participants p SET last_integration_turn = greatest(p.last_integration_turn, idle.snapshot_seq)
        FROM people AS w, idle WHERE p.id = w.id AND p.last_integration_turn = w.watermark
        RETURNING p.id, p.last_integration_turn),
    done AS (
        UPDATE jobs SET status = '{SUCCEEDED}', finished_at = now(), lease_expires_at = NULL,
                        progress_completed = (SELECT count(*) FROM people),
                        result = jsonb_build_object('participants', coalesce((
                            SELECT jsonb_agg(jsonb_build_object(
                                       'name', p.name, 'turns_integrated', 0, 'insights_created', 0,
                                       'memories_created', 0, 'watermark', coalesce(m.last_integration_turn, p.watermark))
                                   ORDER BY p.name COLLATE "C")
                            FROM people p LEFT JOIN moved m ON m.id = p.id), '[]'::jsonb))
        WHERE id = (SELECT id FROM idle)
        RETURNING id, namespace_id, status),
    {_OUTBOX}
    SELECT least(1, {_NOTIFY})
"""
"""Params: id, owner. One row: 1 when the job was finished, else 0."""


# One step of an integration, in one statement: the participants it commits (at most one with new
# turns, the writer, and any with nothing to write) move their watermarks; the writer's insights
# and memories go in, conditional on its watermark moving (a participant unbound or rebound since
# the claim gets nothing); the job records its result and progress, or, on the last step, finishes
# and wakes its long-polls. Nothing applies (``ok`` is empty) unless:
# - the run still owns the job, no cancel was requested and the session's generation is the run's:
#   the fence (LOCK_RUN), sent before this statement in the same transaction, holds the locks that
#   keep it so;
# - the agent's latest memories are still the window the writer's memories were sifted against:
#   none after its newest (``high``), and ``kept`` of them from its oldest (``low``) to ``high``,
#   none deleted (the agent's lock, LOCK_AGENT, is taken before this statement too);
# - none of the turns the write rests on (``seqs``) was redacted since it was read.
# The result is computed here from what moved: ``others`` are the result's entries of participants
# not in this step, ``entries`` give each participant of the step its entry if it moved or if not.
COMMIT_STEP = f"""
    WITH ok AS MATERIALIZED (
        SELECT j.id FROM jobs j JOIN sessions s ON s.id = j.session_id
        WHERE j.id = %(id)s AND j.attempts = %(token)s AND j.status = '{RUNNING}' AND NOT j.cancel_requested
          AND s.generation = %(generation)s
          AND NOT EXISTS (SELECT FROM memories WHERE agent_id = %(agent_id)s AND id > %(high)s)
          AND (SELECT count(*) FROM memories WHERE agent_id = %(agent_id)s AND id BETWEEN %(low)s AND %(high)s)
              = %(kept)s
          AND NOT EXISTS (SELECT FROM turns WHERE session_id = %(session_id)s AND seq = ANY(CAST(%(seqs)s AS int[]))
                          AND redacted_at IS NOT NULL)),
    moved AS MATERIALIZED (
        UPDATE participants p SET last_integration_turn = greatest(p.last_integration_turn, %(snapshot)s)
        FROM unnest(CAST(%(participants)s AS bigint[]), CAST(%(watermarks)s AS int[])) AS w(id, watermark)
        WHERE p.id = w.id AND p.last_integration_turn = w.watermark AND EXISTS (SELECT FROM ok)
        RETURNING p.id, p.last_integration_turn),
    writer AS MATERIALIZED (SELECT FROM moved WHERE moved.id = CAST(%(writer)s AS bigint)),
    new_insights AS (
        INSERT INTO insights (session_id, agent_id, content, importance, evidence, job_id)
        SELECT %(session_id)s, %(agent_id)s, d.content, d.importance, d.evidence, %(id)s
        FROM jsonb_to_recordset(CAST(%(insights)s AS jsonb)) AS d(content text, importance smallint, evidence bigint[])
        WHERE EXISTS (SELECT FROM writer)),
    new_memories AS (
        INSERT INTO memories (agent_id, session_id, session_name, generation, kind, speaker, content, importance,
                              evidence, occurred_at, job_id)
        SELECT %(agent_id)s, %(session_id)s, %(session_name)s, %(generation)s, m.kind, m.speaker, m.content,
               m.importance, m.evidence, m.occurred_at, %(id)s
        FROM jsonb_to_recordset(CAST(%(memories)s AS jsonb))
             AS m(kind text, speaker text, content text, importance smallint, evidence bigint[],
                  occurred_at timestamptz)
        WHERE EXISTS (SELECT FROM writer)),
    reinforced AS (
        UPDATE memories m SET reinforcements = m.reinforcements + r.times, last_seen_at = now()
        FROM (SELECT id, count(*) AS times FROM unnest(CAST(%(reinforce)s AS bigint[])) AS id GROUP BY id) r
        WHERE m.id = r.id AND EXISTS (SELECT FROM writer)),
    result AS (
        SELECT jsonb_build_object('participants', coalesce(jsonb_agg(r.e ORDER BY r.e ->> 'name' COLLATE "C"),
                                                           '[]'::jsonb)) AS value
        FROM (SELECT e FROM jsonb_array_elements(CAST(%(others)s AS jsonb)) AS e
              UNION ALL
              SELECT CASE WHEN EXISTS (SELECT FROM moved WHERE moved.id = x.participant) THEN x.moved ELSE x.stayed END
              FROM jsonb_to_recordset(CAST(%(entries)s AS jsonb)) AS x(participant bigint, moved jsonb, stayed jsonb)) r),
    step AS (
        UPDATE jobs SET result = (SELECT value FROM result), progress_completed = %(completed)s,
                        status = CASE WHEN %(last)s THEN '{SUCCEEDED}' ELSE status END,
                        finished_at = CASE WHEN %(last)s THEN now() ELSE finished_at END,
                        lease_expires_at = CASE WHEN %(last)s THEN NULL ELSE lease_expires_at END
        WHERE id = (SELECT id FROM ok)
        RETURNING id, namespace_id, status),
    done AS (SELECT id, namespace_id, status FROM step WHERE %(last)s),
    {_OUTBOX}
    SELECT EXISTS (SELECT FROM step), ARRAY(SELECT id FROM moved), {_NOTIFY}
"""
"""Params: id, token, generation, session_id, session_name, snapshot, participants and watermarks
(as read), writer (a participant id or None), agent_id, insights and memories (JSON lists, in the
order they are written), reinforce (memory ids seen again), the window sifted against (low, high,
kept), seqs (the writer's turns), others, entries, completed, last. One row: (the step applied,
ids of the participants whose watermark moved, notifications sent). The last step also writes the
job's webhook deliveries (the outbox)."""


REQUEUE = f"""
    UPDATE jobs SET status = '{QUEUED}', lease_owner = NULL, lease_expires_at = NULL, dispatched_at = NULL,
                    redispatches = 0, error = CAST(%(error)s AS jsonb)
    WHERE id = %(id)s
"""
"""Put a failed run's job back in the queue, keeping the error seen (params: id, error)."""


def requeue(db: UnitOfWork, job_id: str, error: dict[str, Any]) -> None:
    """Put a failed run's job (locked by the caller) back in the queue, keeping the error seen."""
    connector.execute(db, REQUEUE, {"id": job_id, "error": json.dumps(error)})
