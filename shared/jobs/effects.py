"""The effects of integrate and truncate, each write fenced by the run's token and generation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import unit_of_work
from shared.embedders import Embedder
from shared.integrators import ChatTurn, InsightDraft, Integrator, IntegratorError, Reflection
from shared.jobs import repository as repo
from shared.jobs.repository import Dispatch, Run
from shared.jobs.schemas import JobStatus
from shared.memories import stream
from shared.sessions import repository as sessions_repo

log = logging.getLogger("engram.jobs")


class Fenced(Exception):
    """This run no longer owns the job, or the session was truncated since it started."""


class Superseded(Fenced):
    """A truncate committed after this integration started: it must commit nothing."""


class Cancelled(Exception):
    """A cancel was requested: the run stops at this safe point."""


class SafePoint(Protocol):
    """What a run learns between participants (its heartbeat): whether it still owns the job and
    whether a cancel was requested."""

    lost: bool
    cancel_requested: bool

    def checkpoint(self) -> None: ...


def fence(db: Session, run: Run) -> bool:
    """Take the fence for a write of ``run`` (repo.lock_run) or raise; returns whether a cancel
    was requested."""
    locked = repo.lock_run(db, run.id, run.token)
    if locked is None:
        raise Fenced("the job is no longer this run's (lease expired and re-queued, finished, or purged)")
    if locked.generation != run.generation:
        raise Superseded(f"the session was truncated (generation {run.generation} -> {locked.generation})")
    return locked.cancel_requested


# --- truncate ---------------------------------------------------------------------------------


def truncate(db: Session, run: Run) -> list[Dispatch]:
    """In the claim's transaction: reset the session, finish the job, dispatch the next one."""
    sessions_repo.lock(db, run.session_id)
    turns, generation = sessions_repo.truncate(db, run.session_id)
    repo.finish(db, run.id, JobStatus.SUCCEEDED, result={"turns_deleted": turns, "generation": generation},
                completed=1)
    return repo.dispatch_next(db, run.session_id)


# --- integrate --------------------------------------------------------------------------------


@dataclass
class Plan:
    participant_id: int
    agent_id: int
    name: str
    description: str
    watermark: int  # last_integration_turn when the run started
    turns: list[ChatTurn]
    occurred: dict[int, datetime] = field(default_factory=dict)  # seq -> when the turn happened
    drafts: list[InsightDraft] = field(default_factory=list)
    entries: list[stream.Entry] = field(default_factory=list)  # what its memory stream may gain


def plan_integration(db: Session, run: Run) -> list[Plan]:
    """In the claim's transaction: who to integrate and which turns each one sees, as of the claim."""
    people = sessions_repo.participants_to_integrate(db, run.session_id)
    if not people:
        return []
    plans = {p.participant_id: Plan(p.participant_id, p.agent_id, p.name, p.description, p.watermark, [])
             for p in people}
    for participant_id, seq, speaker, content, occurred_at in sessions_repo.new_turns_seen(
            db, run.session_id, run.snapshot_seq):
        plan = plans[participant_id]
        plan.turns.append(ChatTurn(seq=seq, speaker=speaker, content=content))
        plan.occurred[seq] = occurred_at
    return list(plans.values())


def _encodable(content: str) -> bool:
    """PostgreSQL text holds UTF-8: a lone surrogate (e.g. from a JSON escape) cannot be stored."""
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_drafts(drafts: list[InsightDraft], turns: list[ChatTurn], integrator: Integrator) -> None:
    """Refuse, before anything is written, insights that could not be stored or cite turns the
    integrator was not given: the job fails with a clear error and writes nothing."""
    seqs = {t.seq for t in turns}
    for i, d in enumerate(drafts):
        if not d.content or "\x00" in d.content or not _encodable(d.content):
            raise IntegratorError(f"{integrator.name} integrator: insight {i} has empty or invalid content")
        if not 1 <= d.importance <= 10:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} importance {d.importance} not in 1..10")
        if not set(d.evidence) <= seqs:
            raise IntegratorError(f"{integrator.name} integrator: insight {i} cites turns it was not given")


def integrate(run: Run, settings: Settings, integrator: Integrator, safe_point: SafePoint,
              plans: list[Plan], embedder: Embedder | None = None) -> list[Dispatch]:
    """Reflect for every participant and embed what they may remember first (no writes: a failing
    integrator or embedder writes nothing), then commit each participant in its own transaction;
    the last one also finishes the job."""
    for plan in plans:
        _checkpoint(safe_point)
        if plan.turns:
            plan.drafts = integrator.reflect(
                Reflection(agent=plan.name, agent_description=plan.description, turns=plan.turns))
            check_drafts(plan.drafts, plan.turns, integrator)
            plan.entries = stream.entries(plan.turns, plan.drafts, plan.occurred)
    if embedder is not None:
        _checkpoint(safe_point)
        stream.embed(embedder, [e for plan in plans for e in plan.entries])
    if not plans:
        with unit_of_work(settings) as db:
            fence(db, run)
            repo.finish(db, run.id, JobStatus.SUCCEEDED, result=_merge_result(run.result, []))
            return repo.dispatch_next(db, run.session_id)
    to_dispatch: list[Dispatch] = []
    for i, plan in enumerate(plans):
        _checkpoint(safe_point)
        to_dispatch = _commit_participant(run, settings, plan, done=i, last=i == len(plans) - 1)
    return to_dispatch


def _checkpoint(safe_point: SafePoint) -> None:
    """A safe point between participants: stop when cancelled or no longer ours."""
    safe_point.checkpoint()
    if safe_point.lost:
        raise Fenced("the lease was lost")
    if safe_point.cancel_requested:
        raise Cancelled()


def _commit_participant(run: Run, settings: Settings, plan: Plan, *, done: int, last: bool) -> list[Dispatch]:
    """One transaction per participant: its insights and memories, and its watermark."""
    with unit_of_work(settings) as db:
        if fence(db, run):
            raise Cancelled()
        moved = sessions_repo.move_watermark(db, plan.participant_id, plan.watermark, run.snapshot_seq)
        insights = memories = 0
        if moved is not None and plan.turns:
            _drop_redacted(db, run, plan)
            insights, memories = _store(db, run, plan, settings.memory_similarity_threshold,
                                        settings.memory_dedup_window)
        if moved is None:
            log.info("participant %s of job %s was unbound or rebound meanwhile; skipped", plan.name, run.id)
        entry = {"name": plan.name, "turns_integrated": len(plan.turns) if moved is not None else 0,
                 "insights_created": insights, "memories_created": memories,
                 "watermark": moved if moved is not None else plan.watermark}
        result = _merge_result(run.result, [entry])
        to_dispatch: list[Dispatch] = []
        if not last:
            repo.record_progress(db, run.id, result, done + 1)
        else:
            repo.finish(db, run.id, JobStatus.SUCCEEDED, result=result, completed=done + 1)
            to_dispatch = repo.dispatch_next(db, run.session_id)
    run.result = result  # committed: later participants build on it
    return to_dispatch


def _drop_redacted(db: Session, run: Run, plan: Plan) -> None:
    """Turns redacted since the plan was read (the fence orders this transaction after the
    redaction's): neither they nor what cites them is written."""
    gone = sessions_repo.redacted_among(db, run.session_id, [t.seq for t in plan.turns])
    if gone:
        plan.turns = [t for t in plan.turns if t.seq not in gone]
        plan.drafts = [d for d in plan.drafts if not gone & set(d.evidence)]
        plan.entries = [e for e in plan.entries if not gone & set(e.evidence)]


def _store(db: Session, run: Run, plan: Plan, threshold: float, window: int) -> tuple[int, int]:
    """The participant's insights, then its memory stream. Returns (insights, memories) created."""
    sessions_repo.insert_insights(db, [
        {"session_id": run.session_id, "agent_id": plan.agent_id, "content": d.content, "importance": d.importance,
         "evidence": sorted(set(d.evidence)), "job_id": run.id}
        for d in plan.drafts
    ])
    created = stream.write(db, agent_id=plan.agent_id, session_id=run.session_id, session_name=run.session_name,
                           generation=run.generation, job_id=run.id, batch=plan.entries, threshold=threshold,
                           window=window)
    return len(plan.drafts), created


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
