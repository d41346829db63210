"""The effects of integrate and truncate, each write fenced by the run's token and generation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz, process
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import unit_of_work
from shared.integrators import ChatTurn, Integrator, IntegratorError, InsightDraft, Reflection
from shared.jobs import repository as repo
from shared.models import Agent, Insight, Job, Memory, Participant, Turn
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


def truncate(db: Session, job: Job) -> list[tuple[str, str]]:
    """In the claim's transaction: reset the session, finish the job, hand over to the next one."""
    repo.session_generation(db, job.session_id, for_update=True)  # waits for any write in flight
    turns, generation = sessions_repo.truncate(db, job.session_id)
    job.progress_total = 1
    repo.finish(db, job, "succeeded", result={"turns_deleted": turns, "generation": generation})
    job.progress_completed = 1
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


def _new_turns(db: Session, job: Job, p: Participant, agent_name: str) -> list[ChatTurn]:
    # (session_id, seq) is the primary key: the read starts at the watermark, so its cost
    # follows the new turns, not the session's history.
    low = max(p.last_integration_turn, p.bound_after_seq)
    rows = db.execute(
        select(Turn.seq, Turn.speaker, Turn.content)
        .where(Turn.session_id == job.session_id, Turn.seq > low, Turn.seq <= job.snapshot_seq,
               sessions_repo.visible_to(agent_name))
        .order_by(Turn.seq)
    )
    return [ChatTurn(seq=s, speaker=sp, content=c) for s, sp, c in rows]


def plan_integration(db: Session, job: Job) -> list[Plan]:
    """In the claim's transaction: who to integrate and which turns, as of the claim."""
    people = db.execute(
        select(Participant, Agent).join(Agent, Agent.id == Participant.agent_id)
        .where(Participant.session_id == job.session_id).order_by(Agent.name)
    ).all()
    job.progress_total = len(people)
    job.progress_completed = 0
    return [Plan(p.id, a.id, a.name, a.description, p.last_integration_turn, _new_turns(db, job, p, a.name))
            for p, a in people]


def _check_drafts(drafts: list[InsightDraft], turns: list[ChatTurn], integrator: Integrator) -> None:
    seqs = {t.seq for t in turns}
    for i, d in enumerate(drafts):
        if not d.content or "\x00" in d.content:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} has empty or invalid content")
        if not 1 <= d.importance <= 10:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} importance {d.importance} not in 1..10")
        if not set(d.evidence) <= seqs:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} cites turns it was not given")


def integrate(job: Job, token: int, settings: Settings, integrator: Integrator, hb: Heartbeat,
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


def _lock(db: Session, job: Job, token: int) -> bool:
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


def _commit_participant(job: Job, token: int, settings: Settings, plan: Plan, *, done: int,
                        last: bool) -> list[tuple[str, str]]:
    with unit_of_work(settings) as db:
        if _lock(db, job, token):
            raise Cancelled()
        moved = db.execute(
            update(Participant)
            .where(Participant.id == plan.participant_id, Participant.last_integration_turn == plan.watermark)
            .values(last_integration_turn=func.greatest(Participant.last_integration_turn, job.snapshot_seq))
            .returning(Participant.last_integration_turn)
        ).scalar_one_or_none()
        insights = memories = 0
        if moved is not None and plan.drafts:
            insights, memories = _store(db, job, plan, settings.memory_similarity_threshold)
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


def _store(db: Session, job: Job, plan: Plan, threshold: float) -> tuple[int, int]:
    db.execute(insert(Insight), [
        {"session_id": job.session_id, "agent_id": plan.agent_id, "content": d.content, "importance": d.importance,
         "evidence": sorted(set(d.evidence)), "job_id": job.id}
        for d in plan.drafts
    ])
    # Lock the agent (so two sessions integrating it cannot both add one memory) and read what it
    # remembers, in one round trip.
    known = [c for c in db.execute(
        select(Memory.content).select_from(Agent).join(Memory, Memory.agent_id == Agent.id, isouter=True)
        .where(Agent.id == plan.agent_id).with_for_update(of=Agent)).scalars() if c is not None]
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
        db.execute(insert(Memory), new)
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
