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


def _fence(db: Session, job: Job, token: int, *, for_truncate: bool = False) -> Job:
    current = repo.fence(db, job.id, token)
    if current is None:
        raise Fenced("the job is no longer this run's (lease expired and re-queued, or finished)")
    generation = repo.session_generation(db, job.session_id, for_update=for_truncate)
    if generation is None:
        raise Fenced("the session was purged")
    if not for_truncate and generation != job.run_generation:
        raise Superseded(f"the session was truncated (generation {job.run_generation} -> {generation})")
    return current


# --- truncate ---------------------------------------------------------------------------------


def truncate(job: Job, token: int, settings: Settings) -> None:
    """One transaction: reset the session and finish the job."""
    with unit_of_work(settings) as db:
        current = _fence(db, job, token, for_truncate=True)
        turns = sessions_repo.truncate(db, job.session_id)
        generation = repo.session_generation(db, job.session_id)
        current.progress_total = current.progress_completed = 1
        repo.finish(db, current, "succeeded", result={"turns_deleted": turns, "generation": generation})


# --- integrate --------------------------------------------------------------------------------


@dataclass
class Plan:
    participant_id: int
    agent_id: int
    name: str
    watermark: int  # last_integration_turn when the run started
    drafts: list[InsightDraft] = field(default_factory=list)
    turns: int = 0


def _participants(db: Session, job: Job) -> list[tuple[Participant, Agent]]:
    return list(db.execute(
        select(Participant, Agent).join(Agent, Agent.id == Participant.agent_id)
        .where(Participant.session_id == job.session_id).order_by(Agent.name)
    ).all())


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


def _check_drafts(drafts: list[InsightDraft], turns: list[ChatTurn], integrator: Integrator) -> None:
    seqs = {t.seq for t in turns}
    for i, d in enumerate(drafts):
        if not d.content or "\x00" in d.content:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} has empty or invalid content")
        if not 1 <= d.importance <= 10:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} importance {d.importance} not in 1..10")
        if not set(d.evidence) <= seqs:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} cites turns it was not given")


def integrate(job: Job, token: int, settings: Settings, integrator: Integrator, hb: Heartbeat) -> None:
    """Reflect for every participant first (no writes: a failing integrator writes nothing), then
    commit each participant in its own transaction."""
    with unit_of_work(settings) as db:
        current = _fence(db, job, token)
        people = _participants(db, job)
        current.progress_total = len(people)
        current.progress_completed = 0
        current.result = _merge_result(current.result, [])
        plans: list[tuple[Plan, list[ChatTurn], str]] = []
        for p, a in people:
            turns = _new_turns(db, job, p, a.name)
            plans.append((Plan(p.id, a.id, a.name, p.last_integration_turn, turns=len(turns)), turns, a.description))

    for plan, turns, description in plans:
        _checkpoint(hb)
        if turns:
            plan.drafts = integrator.reflect(Reflection(agent=plan.name, agent_description=description, turns=turns))
            _check_drafts(plan.drafts, turns, integrator)

    for plan, _, _ in plans:
        _checkpoint(hb)
        _commit_participant(job, token, settings, plan)
    with unit_of_work(settings) as db:
        current = _fence(db, job, token)
        repo.finish(db, current, "succeeded")


def _checkpoint(hb: Heartbeat) -> None:
    """A safe point between participants: renew the lease; stop when cancelled or no longer ours."""
    hb.beat()
    if hb.lost:
        raise Fenced("the lease was lost")
    if hb.cancel_requested:
        raise Cancelled()


def _commit_participant(job: Job, token: int, settings: Settings, plan: Plan) -> None:
    with unit_of_work(settings) as db:
        current = _fence(db, job, token)
        if current.cancel_requested:
            repo.finish(db, current, "cancelled")
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
        entry = {"name": plan.name, "turns_integrated": plan.turns if moved is not None else 0,
                 "insights_created": insights, "memories_created": memories,
                 "watermark": moved if moved is not None else plan.watermark}
        current.result = _merge_result(current.result, [entry])
        current.progress_completed = current.progress_completed + 1
        if moved is None:
            log.info("participant %s of job %s was unbound or rebound meanwhile; skipped", plan.name, job.id)


def _store(db: Session, job: Job, plan: Plan, threshold: float) -> tuple[int, int]:
    db.execute(insert(Insight), [
        {"session_id": job.session_id, "agent_id": plan.agent_id, "content": d.content, "importance": d.importance,
         "evidence": sorted(set(d.evidence)), "job_id": job.id}
        for d in plan.drafts
    ])
    # Lock the agent so two sessions integrating the same agent cannot both add one memory.
    db.execute(select(Agent.id).where(Agent.id == plan.agent_id).with_for_update())
    known = list(db.execute(select(Memory.content).where(Memory.agent_id == plan.agent_id)).scalars())
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
