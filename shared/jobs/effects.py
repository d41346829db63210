"""The effects of integrate and truncate, each write fenced by the run's token and generation."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.config import Settings
from shared.embedders import Embedder
from shared.integrators import ChatTurn, InsightDraft, Integrator, IntegratorError, Reflection
from shared.jobs import repository as repo
from shared.jobs import runs
from shared.jobs.runs import Run
from shared.kit import connector
from shared.kit.db import UnitOfWork, unit_of_work
from shared.memories import repository as memories_repo
from shared.memories import stream
from shared.models.states import JobStatus
from shared.queue import Dispatch
from shared.sessions import repository as sessions_repo

log = logging.getLogger("engram.jobs")


class Fenced(Exception):
    """This run no longer owns the job, or the session was truncated since it started."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.to_dispatch: list[Dispatch] = []  # messages its last transaction decided (see _commit_step)


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


def fence(run: Run, locked: runs.Fence | None) -> None:
    """Raise unless the fence (runs.LOCK_RUN, taken before any write of ``run``) lets the run
    write: the job is still the run's, the session was not truncated since the claim, and no
    cancel was requested."""
    if locked is None:
        raise Fenced("the job is no longer this run's (lease expired and re-queued, finished, or purged)")
    if locked.generation != run.generation:
        raise Superseded(f"the session was truncated (generation {run.generation} -> {locked.generation})")
    if locked.cancel_requested:
        raise Cancelled()


# --- truncate ---------------------------------------------------------------------------------


def truncate_run(settings: Settings, run: Run) -> list[Dispatch]:
    """A claimed truncate, in one fenced transaction (a cancel requested since the claim stops it)."""
    with unit_of_work(settings) as db:
        fence(run, runs.lock_run(db, run.id, run.token))
        return truncate(db, run)


def truncate(db: UnitOfWork, run: Run) -> list[Dispatch]:
    """Reset the session, finish the job, dispatch the next one (in a fenced transaction)."""
    sessions_repo.lock(db, run.session_id)
    turns, generation = sessions_repo.truncate(db, run.session_id)
    runs.finish(db, run.id, JobStatus.SUCCEEDED, result={"turns_deleted": turns, "generation": generation},
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
    earlier: list[ChatTurn] = field(default_factory=list)  # integrated before: the integrator's context
    drafts: list[InsightDraft] = field(default_factory=list)
    entries: list[stream.Entry] = field(default_factory=list)  # what its memory stream may gain
    # The agent's latest memories as read by the claim (without the agent's lock); None: unknown.
    window: stream.Window | None = None


def plans_of(people: Sequence[tuple[Any, ...]], seen: Sequence[tuple[Any, ...]],
             earlier: Sequence[tuple[Any, ...]] = ()) -> list[Plan]:
    """The plans from the rows of the reads (participants to integrate, new turns seen, and the
    turns they integrated before, as context)."""
    plans = {p[0]: Plan(p[0], p[1], p[2], p[3], p[4], []) for p in people}
    for rows, into in ((seen, "turns"), (earlier, "earlier")):
        for participant_id, seq, speaker, content, occurred_at in rows:
            plan = plans[participant_id]
            getattr(plan, into).append(ChatTurn(seq=seq, speaker=speaker, content=content))
            plan.occurred[seq] = occurred_at
    return list(plans.values())


@dataclass
class Claim:
    run: Run | None  # None: not claimed (a duplicate or early message)
    plans: list[Plan]
    finished: bool  # nothing was new: the claim's transaction finished the job
    to_dispatch: list[Dispatch]  # the session's next head, when the claim's transaction decided it


def claim_integration(settings: Settings, job_id: str, owner: str, lease: timedelta) -> Claim:
    """Claim the job and, in the same round trip, finish it if no participant has anything new
    (runs.FINISH_IF_IDLE), else read the plan of its integration: who to integrate and which turns
    each one sees, as of the claim, and the memories their agents gained since this process last
    wrote them (``Plan.window``; checked again under the agent's lock when writing). A truncate's
    claim has no plan."""
    size = settings.memory_dedup_window
    kept = stream.kept(settings.libpq_url, size)
    params = {**runs.claim_params(job_id, owner, lease), "window": size, "agents": list(kept),
              "highs": [w.high for w in kept.values()]}
    claim, ((finished,),), dispatched, people, seen, earlier, deltas = connector.run(settings, [
        (runs.CLAIM, params), (runs.FINISH_IF_IDLE, params), (repo.DISPATCH_AFTER, params),
        (runs.PARTICIPANTS_TO_INTEGRATE, params), (runs.NEW_TURNS_SEEN, params),
        (runs.earlier_turns_seen(settings.integration_context_turns), params), (runs.WINDOW_DELTAS, params)])
    plans = plans_of(people, seen, earlier)
    newer: dict[int, list[tuple[int, str, str]]] = {}
    for agent_id, memory_id, kind, said in deltas:
        newer.setdefault(agent_id, []).append((memory_id, kind, said))
    for plan in plans:
        # A memory of the kept window deleted since is not seen here: the write's check
        # (runs.COMMIT_STEP's window check) catches it, and the write then reads the window again under the lock.
        if plan.turns:
            _, plan.window = stream.window_of(settings.libpq_url, plan.agent_id, size)
            plan.window.advance(newer.get(plan.agent_id, []))
    return Claim(runs.claimed(claim[0] if claim else None), plans, bool(finished),
                 [Dispatch(r[0], r[1]) for r in dispatched])


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
    integrator or embedder writes nothing), then commit each participant with new turns in its own
    transaction; the participants with nothing new go with the last one, which also finishes the
    job (alone, when no participant has anything new)."""
    for plan in plans:
        _checkpoint(safe_point)
        if plan.turns:
            plan.drafts = integrator.reflect(Reflection(
                agent=plan.name, agent_description=plan.description, turns=plan.turns, earlier=plan.earlier))
            check_drafts(plan.drafts, [*plan.earlier, *plan.turns], integrator)
            plan.entries = stream.entries(plan.turns, plan.drafts, plan.occurred)
    if embedder is not None:
        _checkpoint(safe_point)
        stream.embed(embedder, [e for plan in plans for e in plan.entries])
    writers: list[Plan | None] = [plan for plan in plans if plan.turns]
    idle = [plan for plan in plans if not plan.turns]
    steps = writers or [None]
    done = 0
    to_dispatch: list[Dispatch] = []
    for i, writer in enumerate(steps):
        _checkpoint(safe_point)
        last = i == len(steps) - 1
        with_it = idle if last else []
        done += (writer is not None) + len(with_it)
        to_dispatch = _commit_step(run, settings, writer, with_it, done=done, last=last)
    return to_dispatch


def _checkpoint(safe_point: SafePoint) -> None:
    """A safe point between participants: stop when cancelled or no longer ours."""
    safe_point.checkpoint()
    if safe_point.lost:
        raise Fenced("the lease was lost")
    if safe_point.cancel_requested:
        raise Cancelled()


def _commit_step(run: Run, settings: Settings, writer: Plan | None, idle: list[Plan], *, done: int,
                 last: bool) -> list[Dispatch]:
    """One transaction: the writer's insights and memories (if any) and the watermarks of the
    writer and of the idle participants; the job's progress, or its finish and the dispatch of
    the session's next job. One round trip: the fence, the agent's lock and COMMIT_STEP, whose
    writes apply only if the agent's memories are still those the claim read (``Plan.window``).
    When they are not (another process wrote or deleted some meanwhile), or the claim could not
    tell, two: the fence, the agent's lock and its latest memories; then the writes, committed."""
    if writer is not None and writer.window is not None:
        rows = _try_step(run, settings, writer, idle, writer.window, done=done, last=last)
        if rows is not None:
            return rows
    return _locked_step(run, settings, writer, idle, done=done, last=last)



def _step(run: Run, settings: Settings, writer: Plan | None, idle: list[Plan], window: stream.Window | None, *,
          done: int, last: bool) -> tuple[connector.Statement, list[connector.Statement], Callable[[set[int]], dict[str, Any]]]:
    """COMMIT_STEP for the writer sifted against ``window``, the statements to send after it in
    the same transaction, and the result once the moved participants are known."""
    params: dict[str, Any] = {
        "id": run.id, "token": run.token, "generation": run.generation, "session_id": run.session_id,
        "session_name": run.session_name, "snapshot": run.snapshot_seq, "completed": done, "last": last,
        "writer": None, "agent_id": None, "insights": "[]", "memories": "[]", "reinforce": [],
        "low": 1, "high": 0, "kept": 0, "seqs": []}
    after: list[connector.Statement] = []
    members = ([writer] if writer is not None else []) + idle
    counts: dict[int, tuple[int, int]] = {}  # participant id -> (insights, memories) it would write
    if writer is not None and window is not None:
        new, reinforced = stream.sift(window, writer.entries, settings.memory_similarity_threshold)
        params.update(writer=writer.participant_id, agent_id=writer.agent_id, reinforce=reinforced,
                      memories=stream.rows_json(new), low=window.low, high=window.high, kept=len(window.order),
                      seqs=_cited(writer),
                      insights=json.dumps([{"content": d.content, "importance": d.importance,
                                            "evidence": sorted(set(d.evidence))} for d in writer.drafts]))
        counts[writer.participant_id] = (len(writer.drafts), len(new))
        vectors = stream.vectors_json(new)
        if vectors is not None:
            after.append((memories_repo.INSERT_VECTORS, {
                "vectors": vectors, "agent_id": writer.agent_id, "id": run.id, "after": window.high}))
    if last:
        after.append((repo.DISPATCH_NEXT, {"session_id": run.session_id}))
    others, entries, results = _step_result(run, members, counts)
    params.update(participants=[p.participant_id for p in members], watermarks=[p.watermark for p in members],
                  others=json.dumps(others), entries=json.dumps(entries))
    return (runs.COMMIT_STEP, params), after, results


def _try_step(run: Run, settings: Settings, writer: Plan, idle: list[Plan], window: stream.Window, *,
              done: int, last: bool) -> list[Dispatch] | None:
    """The step in one round trip, with the window the claim read; None when it did not apply
    because the agent's memories or the writer's turns changed since (nothing was written)."""
    step, after, results = _step(run, settings, writer, idle, window, done=done, last=last)
    locked, _, *rows = connector.run(settings, [
        (runs.LOCK_RUN, {"id": run.id, "token": run.token}), (memories_repo.LOCK_AGENT, {"agent_id": writer.agent_id}),
        step, *after])
    _fence_or_raise(run, locked, rows, last)
    if not rows[0][0][0]:
        return None
    stream.keep(stream.window_of(settings.libpq_url, writer.agent_id, window.size)[0], window)
    return _applied(run, [writer, *idle], rows, results, last)


def _locked_step(run: Run, settings: Settings, writer: Plan | None, idle: list[Plan], *, done: int,
                 last: bool) -> list[Dispatch]:
    """The step with the agent's latest memories read under its lock first (two round trips;
    one without a writer)."""
    lock_run = (runs.LOCK_RUN, {"id": run.id, "token": run.token})
    with connector.transaction(settings) as tx:
        if writer is None:
            step, after, results = _step(run, settings, None, idle, None, done=done, last=last)
            locked, *rows = tx.send([lock_run, step, *after], commit=True)
            _fence_or_raise(run, locked, rows, last)
            return _applied(run, idle, rows, results, last)
        key, window = stream.window_of(settings.libpq_url, writer.agent_id, settings.memory_dedup_window)
        if writer.window is not None:
            window = writer.window
        agent = {"agent_id": writer.agent_id, "window": window.size, "after": window.high}
        seqs = {"session_id": run.session_id, "seqs": _cited(writer)}
        locked, _, newer, ((count,),), redacted = tx.send([
            lock_run, (memories_repo.LOCK_AGENT, agent), (memories_repo.RECENT, agent),
            (memories_repo.COUNT_BETWEEN, {"agent_id": writer.agent_id, "low": window.low, "high": window.high}),
            (sessions_repo.REDACTED_AMONG, seqs)])
        fence(run, runs.fenced(locked[0] if locked else None))
        if count != len(window.order):  # memories of the window were deleted: read it all again
            window = stream.Window(window.size)
            (newer,) = tx.send([(memories_repo.RECENT, {**agent, "after": 0})])
        window.advance(newer)
        _drop_redacted(writer, {r[0] for r in redacted})
        step, after, results = _step(run, settings, writer, idle, window, done=done, last=last)
        rows = tx.send([step, *after], commit=True)
    if not rows[0][0][0]:  # cannot be while the locks hold; say so rather than report what did not happen
        raise Fenced("the job's step did not apply")
    stream.keep(key, window)
    return _applied(run, [writer, *idle], rows, results, last)


def _fence_or_raise(run: Run, locked: list[tuple[Any, ...]], rows: list[list[tuple[Any, ...]]], last: bool) -> None:
    """Raise unless the fence sent in the step's round trip let it write."""
    try:
        fence(run, runs.fenced(locked[0] if locked else None))
    except Fenced as exc:
        # The job is no longer the run's: if it was re-queued as its session's head, the
        # step's dispatch marked it and its message is the runner's to send.
        exc.to_dispatch = [Dispatch(r[0], r[1]) for r in rows[-1]] if last else []
        raise


def _applied(run: Run, members: list[Plan], rows: list[list[tuple[Any, ...]]],
             results: Callable[[set[int]], dict[str, Any]], last: bool) -> list[Dispatch]:
    """After a step committed: the run's result as committed, and the messages to send."""
    moved_ids = set(rows[0][0][1])
    for p in members:
        if p.participant_id not in moved_ids:
            log.info("participant %s of job %s was unbound or rebound meanwhile; skipped", p.name, run.id)
    run.result = results(moved_ids)  # committed: later steps build on it
    return [Dispatch(r[0], r[1]) for r in rows[-1]] if last else []


def _step_result(run: Run, members: list[Plan], counts: dict[int, tuple[int, int]]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], Callable[[set[int]], dict[str, Any]]]:
    """The result after a step, both ways for each of its participants (its watermark moved, or it
    was unbound or rebound meanwhile): the entries of the others, the step's entries (as
    COMMIT_STEP reads them) and the result once the moved participants are known."""
    by_name = {e["name"]: dict(e) for e in (run.result or {}).get("participants", [])}
    names = {p.name for p in members}
    others = [by_name[n] for n in sorted(by_name) if n not in names]
    variants: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for p in members:
        insights, memories = counts.get(p.participant_id, (0, 0))
        old = by_name.get(p.name)
        variants[p.participant_id] = (
            _merge_entry(old, {"name": p.name, "turns_integrated": len(p.turns), "insights_created": insights,
                               "memories_created": memories, "watermark": max(p.watermark, run.snapshot_seq)}),
            _merge_entry(old, {"name": p.name, "turns_integrated": 0, "insights_created": 0, "memories_created": 0,
                               "watermark": p.watermark}))
    entries = [{"participant": pid, "moved": m, "stayed": s} for pid, (m, s) in variants.items()]

    def result(moved: set[int]) -> dict[str, Any]:
        chosen = others + [m if pid in moved else s for pid, (m, s) in variants.items()]
        return {"participants": sorted(chosen, key=lambda e: str(e["name"]))}

    return others, entries, result


def _merge_entry(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A participant's entry of the result; one committed by an earlier attempt adds up."""
    if old is None:
        return new
    merged = dict(old)
    for k in ("turns_integrated", "insights_created", "memories_created"):
        merged[k] += new[k]
    merged["watermark"] = new["watermark"]
    return merged


def _cited(plan: Plan) -> list[int]:
    """The seqs a participant's write rests on: its new turns and every turn its insights cite."""
    return sorted({t.seq for t in plan.turns} | {s for d in plan.drafts for s in d.evidence})


def _drop_redacted(plan: Plan, gone: set[int]) -> None:
    """Turns redacted since the plan was read (the fence orders this transaction after the
    redaction's): neither they nor what cites them is written."""
    if gone:
        plan.turns = [t for t in plan.turns if t.seq not in gone]
        plan.drafts = [d for d in plan.drafts if not gone & set(d.evidence)]
        plan.entries = [e for e in plan.entries if not gone & set(e.evidence)]
