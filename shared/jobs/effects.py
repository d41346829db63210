"""The effects of integrate and truncate, each write fenced by the run's token and generation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz, process
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import unit_of_work
from shared.integrators import ChatTurn, Integrator, IntegratorError, InsightDraft, Reflection
from shared.jobs import repository as repo
from shared.jobs.repository import Run
from shared.sessions import repository as sessions_repo

if TYPE_CHECKING:
    from shared.jobs.runner import Heartbeat

log = logging.getLogger("engram.jobs")


class Fenced(Exception):
    """This run no longer owns the job, or the session was truncated since it started."""


class Superseded(Fenced):
    """A truncate committed after this integration started: it must commit nothing."""


class Cancelled(Exception):
    pass


# --- truncate ---------------------------------------------------------------------------------


def truncate(db: Session, job: Run) -> list[tuple[str, str]]:
    """In the claim's transaction: reset the session, finish the job, hand over to the next one."""
    repo.lock_session(db, job.session_id)
    turns, generation = sessions_repo.truncate(db, job.session_id)
    repo.finish_run(db, job.id, "succeeded", result={"turns_deleted": turns, "generation": generation}, completed=1)
    return repo.promote_next_ids(db, job.session_id)


# --- integrate --------------------------------------------------------------------------------


@dataclass
class Plan:
    participant_id: int
    agent_id: int
    name: str
    description: str
    watermark: int  # last_integration_turn when the run started
    turns: list[ChatTurn]
    drafts: list[InsightDraft] = field(default_factory=list)


_PARTICIPANTS = text("""
    SELECT p.id, p.agent_id, a.name, a.description, greatest(p.last_integration_turn, p.bound_after_seq),
           p.last_integration_turn
    FROM participants p JOIN agents a ON a.id = p.agent_id
    WHERE p.session_id = :session_id ORDER BY a.name
""")
# (session_id, seq) is the primary key: the read starts at the lowest watermark, so its cost
# follows the new turns, not the session's history.
_NEW_TURNS = text("""
    SELECT seq, speaker, content, visible_to FROM turns
    WHERE session_id = :session_id AND seq > :low AND seq <= :snapshot ORDER BY seq
""")


def plan_integration(db: Session, job: Run) -> list[Plan]:
    """In the claim's transaction: who to integrate and which turns each one sees, as of the claim."""
    people = db.execute(_PARTICIPANTS, {"session_id": job.session_id}).all()
    if not people:
        return []
    low = min(p[4] for p in people)
    turns = db.execute(_NEW_TURNS, {"session_id": job.session_id, "low": low, "snapshot": job.snapshot_seq}).all()
    plans = []
    for pid, agent_id, name, description, start, watermark in people:
        # The visibility rule of sessions_repo.visible_to, applied to the rows read once for all.
        seen = [ChatTurn(seq=q, speaker=sp, content=c) for q, sp, c, vis in turns
                if q > start and (vis is None or name in vis or sp == name)]
        plans.append(Plan(pid, agent_id, name, description, watermark, seen))
    return plans


def _check_drafts(drafts: list[InsightDraft], turns: list[ChatTurn], integrator: Integrator) -> None:
    seqs = {t.seq for t in turns}
    for i, d in enumerate(drafts):
        if not d.content or "\x00" in d.content:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} has empty or invalid content")
        if not 1 <= d.importance <= 10:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} importance {d.importance} not in 1..10")
        if not set(d.evidence) <= seqs:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} cites turns it was not given")


def integrate(job: Run, token: int, settings: Settings, integrator: Integrator, hb: Heartbeat,
              plans: list[Plan]) -> list[tuple[str, str]]:
    """Reflect for every participant first (no writes: a failing integrator writes nothing), then
    commit each participant in its own transaction; the last one also finishes the job."""
    for plan in plans:
        _checkpoint(hb)
        if plan.turns:
            plan.drafts = integrator.reflect(
                Reflection(agent=plan.name, agent_description=plan.description, turns=plan.turns))
            _check_drafts(plan.drafts, plan.turns, integrator)
    if not plans:
        with unit_of_work(settings) as db:
            _lock(db, job, token)
            repo.finish_run(db, job.id, "succeeded", result=_merge_result(job.result, []))
            return repo.promote_next_ids(db, job.session_id)
    handover: list[tuple[str, str]] = []
    for i, plan in enumerate(plans):
        _checkpoint(hb)
        handover = _commit_participant(job, token, settings, plan, done=i, last=i == len(plans) - 1)
    return handover


def _lock(db: Session, job: Run, token: int) -> bool:
    """Lock the run's job and session for a write; returns whether a cancel was requested."""
    locked = repo.lock_run(db, job.id, token)
    if locked is None:
        raise Fenced("the job is no longer this run's (lease expired and re-queued, or finished)")
    generation, cancel_requested = locked
    if generation is None:
        raise Fenced("the session was purged")
    if generation != job.run_generation:
        raise Superseded(f"the session was truncated (generation {job.run_generation} -> {generation})")
    return cancel_requested


def _checkpoint(hb: Heartbeat) -> None:
    """A safe point between participants: stop when cancelled or no longer ours."""
    hb.checkpoint()
    if hb.lost:
        raise Fenced("the lease was lost")
    if hb.cancel_requested:
        raise Cancelled()


def _commit_participant(job: Run, token: int, settings: Settings, plan: Plan, *, done: int,
                        last: bool) -> list[tuple[str, str]]:
    with unit_of_work(settings) as db:
        if _lock(db, job, token):
            raise Cancelled()
        moved = db.execute(_MOVE_WATERMARK, {"id": plan.participant_id, "watermark": plan.watermark,
                                             "snapshot": job.snapshot_seq}).scalar_one_or_none()
        insights = memories = 0
        if moved is not None and plan.drafts:
            insights, memories = _store(db, job, plan, settings.memory_similarity_threshold,
                                        settings.memory_dedup_window)
        if moved is None:
            log.info("participant %s of job %s was unbound or rebound meanwhile; skipped", plan.name, job.id)
        entry = {"name": plan.name, "turns_integrated": len(plan.turns) if moved is not None else 0,
                 "insights_created": insights, "memories_created": memories,
                 "watermark": moved if moved is not None else plan.watermark}
        result = _merge_result(job.result, [entry])
        if not last:
            repo.record_progress(db, job.id, result, done + 1)
            handover: list[tuple[str, str]] = []
        else:
            repo.finish_run(db, job.id, "succeeded", result=result, completed=done + 1)
            handover = repo.promote_next_ids(db, job.session_id)
    job.result = result  # committed: later participants build on it
    return handover


_MOVE_WATERMARK = text("""
    UPDATE participants SET last_integration_turn = greatest(last_integration_turn, :snapshot)
    WHERE id = :id AND last_integration_turn = :watermark RETURNING last_integration_turn
""")
_INSERT_INSIGHT = text("""
    INSERT INTO insights (session_id, agent_id, content, importance, evidence, job_id)
    VALUES (:session_id, :agent_id, :content, :importance, :evidence, :job_id)
""")
# Lock the agent (two sessions integrating it cannot both add one memory) and read its most recent
# memories, the window near-duplicates are looked for in, in one round trip. The window bounds the
# cost of an integration however much the agent remembers.
_KNOWN_MEMORIES = text("""
    WITH locked AS (SELECT id FROM agents WHERE id = :agent_id FOR UPDATE)
    SELECT m.content FROM locked
    JOIN LATERAL (SELECT content FROM memories WHERE agent_id = locked.id ORDER BY id DESC LIMIT :window) m ON true
""")
_INSERT_MEMORY = text("""
    INSERT INTO memories (agent_id, session_id, session_name, content, importance, evidence, job_id)
    VALUES (:agent_id, :session_id, :session_name, :content, :importance, :evidence, :job_id)
""")


def _store(db: Session, job: Run, plan: Plan, threshold: float, window: int) -> tuple[int, int]:
    db.execute(_INSERT_INSIGHT, [
        {"session_id": job.session_id, "agent_id": plan.agent_id, "content": d.content, "importance": d.importance,
         "evidence": sorted(set(d.evidence)), "job_id": job.id}
        for d in plan.drafts
    ])
    known = list(db.execute(_KNOWN_MEMORIES, {"agent_id": plan.agent_id, "window": window}).scalars())
    new: list[dict[str, Any]] = []
    for d in plan.drafts:
        match = process.extractOne(d.content, known, scorer=fuzz.token_set_ratio, score_cutoff=threshold) if known else None
        if match is not None:
            continue  # a near-duplicate of something the agent already remembers
        known.append(d.content)
        new.append({"agent_id": plan.agent_id, "session_id": job.session_id, "session_name": job.session_name,
                    "content": d.content, "importance": d.importance, "evidence": sorted(set(d.evidence)),
                    "job_id": job.id})
    if new:
        db.execute(_INSERT_MEMORY, new)
    return len(plan.drafts), len(new)


def _merge_result(result: dict[str, Any] | None, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Add entries to the result; a participant committed by an earlier attempt adds up."""
    by_name = {e["name"]: dict(e) for e in (result or {}).get("participants", [])}
    for e in entries:
        old = by_name.get(e["name"])
        if old is None:
            by_name[e["name"]] = e
        else:
            for k in ("turns_integrated", "insights_created", "memories_created"):
                old[k] += e[k]
            old["watermark"] = e["watermark"]
    return {"participants": [by_name[n] for n in sorted(by_name)]}
