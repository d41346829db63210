"""The tools of ``engram-mcp``: each one a call (or a few) of ``AsyncEngramClient``.

The docstrings are the tools' descriptions, written for the model that picks and calls them; the
``Annotated`` arguments are their input schemas and the return types their output schemas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from engram_client.aio import AsyncEngramClient, AsyncJobHandle
from engram_client.calls import Calls
from engram_client.errors import ConflictError, EngramError, JobTimeoutError, NotFoundError
from engram_client.mcp.errors import engram_errors
from engram_client.mcp.models import (
    AgentArg,
    AppendOutput,
    ContextOutput,
    CursorArg,
    ForgetOutput,
    IntegrateOutput,
    LimitArg,
    MemoriesPage,
    MemoryKindArg,
    NamespaceArg,
    RecallOutput,
    RedactOutput,
    SessionArg,
    SessionsPage,
    Slug,
    TurnInput,
)
from engram_client.mcp.settings import McpSettings
from engram_client.models import FINISHED, Job, JobStatus, ParticipantResult, RecallResult

log = logging.getLogger("engram_client.mcp")
CANCEL_GRACE_SECONDS = 10  # how long a cancelled integrate_session may spend cancelling its Engram job


@dataclass(frozen=True)
class Engram:
    """What every tool call uses: the API client and the server's settings (its defaults)."""

    client: AsyncEngramClient
    settings: McpSettings

    def namespace(self, given: str | None) -> str:
        return _given_or_default("namespace", given, self.settings.namespace)

    def agent(self, given: str | None) -> str:
        return _given_or_default("agent", given, self.settings.agent)


def _given_or_default(what: str, given: str | None, default: str | None) -> str:
    """The ``what`` argument of a tool call, else the server's default (its ENGRAM_MCP_<WHAT> setting)."""
    value = given or default
    if not value:
        raise ToolError(f"No {what}: pass `{what}` (this MCP server has no default {what}; its "
                        f"ENGRAM_MCP_{what.upper()} setting is empty).")
    return value


EngramContext = Context[Engram, Any]


def _engram(ctx: EngramContext) -> Engram:
    return ctx.request_context.lifespan_context


async def append_turns(
    ctx: EngramContext,
    turns: Annotated[list[TurnInput], Field(min_length=1, description="The turns, in the order they were said.")],
    session: Annotated[Slug | None, Field(description=(
        "The session to append to. May be left out only with create_session=true (a name is then generated)."))] = None,
    create_session: Annotated[bool, Field(description=(
        "Create the session first if it does not exist yet."))] = False,
    bind_agent: Annotated[bool, Field(description=(
        "Make `agent` a participant of the session first (creating the agent if needed), so these turns "
        "become its memories at the next integration. A participant only sees turns appended after it was "
        "bound."))] = False,
    agent: AgentArg = None,
    agent_description: Annotated[str, Field(description=(
        "Description of the agent, used only if bind_agent creates it."))] = "",
    namespace: NamespaceArg = None,
    idempotency_key: Annotated[str | None, Field(max_length=255, description=(
        "Any unique string: calling again with the same key and turns does not append them twice."))] = None,
) -> AppendOutput:
    """Record turns of a conversation in an Engram session (all or none). Turns are stored at once; they
    become long-term memories of the session's participants when the session is integrated
    (integrate_session). Use create_session and bind_agent to start remembering a new conversation
    in one call."""
    engram = _engram(ctx)
    ns = engram.namespace(namespace)
    if session is None and not create_session:
        raise ToolError("No session: pass `session`, or create_session=true to create one with a generated name.")
    bound: str | None = None
    created = False
    with engram_errors():
        if create_session or session is None:
            session, created = await _ensure_session(engram.client, ns, session)
        if bind_agent:
            bound = engram.agent(agent)
            try:
                await engram.client.get_agent(ns, bound)
            except NotFoundError:
                await engram.client.put_agent(ns, bound, description=agent_description)
            await engram.client.bind(ns, session, bound)
        result = await engram.client.append_turns(
            ns, session, [t.model_dump(mode="json", exclude_none=True) for t in turns],
            idempotency_key=idempotency_key)
    return AppendOutput(namespace=ns, session=session, first_seq=result.first_seq, last_seq=result.last_seq,
                        session_created=created, bound_agent=bound)


async def _ensure_session(client: AsyncEngramClient, ns: str, name: str | None) -> tuple[str, bool]:
    """The session ``name`` (created if missing, generated if None) and whether this call created it."""
    if name is not None:
        try:
            await client.get_session(ns, name)
            return name, False
        except NotFoundError:
            pass
    try:
        return (await client.create_session(ns, name)).name, True
    except ConflictError:
        if name is None:
            raise
        return name, False  # created by someone else in the meantime


async def integrate_session(
    ctx: EngramContext,
    session: SessionArg,
    namespace: NamespaceArg = None,
    timeout_seconds: Annotated[float, Field(gt=0, le=3600, description=(
        "How long to wait for the integration to finish. If it runs longer, the call returns with "
        "finished=false and the integration goes on in Engram."))] = 600,
    idempotency_key: Annotated[str | None, Field(max_length=255, description=(
        "Any unique string: a repeated call with the same key follows the same integration."))] = None,
) -> IntegrateOutput:
    """Integrate a session: turn each participant's new turns into long-term memories (observations) and
    insights (reflections), then return what was created per participant. Runs as an Engram job that
    may take seconds to minutes; progress notifications follow it (its start, then each participant
    integrated), and cancelling this call cancels the job (participants already integrated keep their
    memories). Calling it again with nothing new does nothing."""
    engram = _engram(ctx)
    ns = engram.namespace(namespace)
    with engram_errors():
        handle = await engram.client.integrate(ns, session, idempotency_key=idempotency_key)
    reported = -1

    async def report(job: Job) -> None:
        # Progress values must grow: a job retried after a lost worker starts counting again.
        nonlocal reported
        step, steps = job_steps(job)
        if step > reported:
            reported = step
            done, total = job.progress.completed, job.progress.total
            await ctx.report_progress(step, steps, f"job {job.id} {job.status}: {done} of {total or '?'} "
                                                   "participants integrated")

    try:
        with engram_errors():
            try:
                job = await handle.wait(timeout=timeout_seconds, on_progress=report, poll=1)
            except JobTimeoutError:
                job = handle.job  # still queued or running: the answer says so (finished=false)
    except anyio.get_cancelled_exc_class():
        await _cancel(handle)
        raise
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ToolError(_unfinished(job))
    participants = [ParticipantResult.model_validate(p) for p in (job.result or {}).get("participants", [])]
    return IntegrateOutput(namespace=ns, session=session, job_id=job.id, status=job.status,
                           finished=job.status in FINISHED, coalesced=handle.coalesced, progress=job.progress,
                           participants=participants)


def job_steps(job: Job) -> tuple[int, int | None]:
    """An integration's progress as MCP reports it: (steps done, steps) where the steps are the job's start
    and then each participant integrated (``job.progress``); the total is known once the job has started.
    Engram reflects for every participant before it writes any, so the participants' steps come last."""
    started = job.status != JobStatus.QUEUED or job.attempts > 0
    steps = job.progress.total + 1 if job.progress.total else None
    return int(started) + job.progress.completed, steps


async def _cancel(handle: AsyncJobHandle) -> None:
    """Cancel the Engram job of a cancelled tool call (shielded: the call's own scope is cancelled)."""
    with anyio.move_on_after(CANCEL_GRACE_SECONDS, shield=True):
        try:
            job = await handle.cancel()
            log.info("cancelled job %s of session %s: %s", job.id, job.session, job.status)
        except ConflictError:
            log.info("job %s had already finished when its tool call was cancelled", handle.id)
        except EngramError as exc:
            log.warning("could not cancel job %s: %s", handle.id, exc)


def _unfinished(job: Job) -> str:
    done = ", ".join(p.get("name", "?") for p in (job.result or {}).get("participants", [])) or "none"
    if job.status == JobStatus.CANCELLED:
        return (f"The integration (job {job.id}) was cancelled before it finished. Participants integrated before "
                f"the cancel keep their memories: {done}. Call integrate_session again to integrate the rest.")
    error = job.error or {}
    return (f"The integration (job {job.id}) failed after {job.attempts} attempt(s): "
            f"{error.get('detail') or error.get('title') or 'no detail'}. Participants integrated before the "
            f"failure: {done}. Retrying may help if the cause was passing; otherwise report it to the user.")


async def recall_memories(
    ctx: EngramContext,
    query: Annotated[str, Field(min_length=1, max_length=2000, description=(
        "What to remember, in plain words: a question or the topic at hand."))],
    agent: AgentArg = None,
    namespace: NamespaceArg = None,
    limit: Annotated[int, Field(ge=1, le=100, description="At most this many memories.")] = 10,
    session: Annotated[Slug | None, Field(description="Only memories from this session.")] = None,
    kinds: Annotated[list[MemoryKindArg] | None, Field(description=(
        "Only these kinds: `observation` (a turn the agent saw) or `reflection` (an insight drawn from "
        "turns)."))] = None,
    explain: Annotated[bool, Field(description="Add to each memory why it ranked where it did.")] = False,
) -> RecallOutput:
    """Recall an agent's long-term memories most useful for a query, best first: what was said or learnt in
    past sessions (only integrated turns are memories). Each memory gives its session and the turns it
    cites as evidence. Use it before answering anything that may depend on the past."""
    engram = _engram(ctx)
    ns, name = engram.namespace(namespace), engram.agent(agent)
    call = Calls.recall(ns, name, query, limit, session, kinds)
    if explain:
        call = replace(call, json={**call.json, "explain": True})
    with engram_errors():
        result: RecallResult = await engram.client.call(call)
    return RecallOutput(namespace=ns, agent=name, query=query, items=result.items)


async def get_context(
    ctx: EngramContext,
    session: SessionArg,
    agent: AgentArg = None,
    namespace: NamespaceArg = None,
    query: Annotated[str | None, Field(max_length=2000, description=(
        "What to recall memories for; default: the session's latest turns."))] = None,
    max_chars: Annotated[int, Field(ge=100, le=200_000, description="The longest `text` to return.")] = 8000,
) -> ContextOutput:
    """Everything an agent needs before its next reply in a session, in one call: its latest turns there,
    the memories recalled for `query`, and its latest insights, plus `text`, all of it rendered to fit
    in `max_chars`, ready to put in a prompt."""
    engram = _engram(ctx)
    ns, name = engram.namespace(namespace), engram.agent(agent)
    with engram_errors():
        context = await engram.client.context(ns, session, name, query=query, max_chars=max_chars)
    return ContextOutput(namespace=ns, **context.model_dump())


async def list_sessions(
    ctx: EngramContext,
    namespace: NamespaceArg = None,
    include_deleted: Annotated[bool, Field(description="Also list soft-deleted sessions.")] = False,
    limit: LimitArg = 20,
    cursor: CursorArg = None,
) -> SessionsPage:
    """List the sessions of a namespace (oldest first, a page at a time): names, participants, turn counts."""
    engram = _engram(ctx)
    ns = engram.namespace(namespace)
    with engram_errors():
        page = await engram.client.list_sessions(ns, include_deleted=include_deleted, limit=limit, cursor=cursor)
    return SessionsPage(namespace=ns, items=page.items, next_cursor=page.next_cursor)


async def list_memories(
    ctx: EngramContext,
    agent: AgentArg = None,
    namespace: NamespaceArg = None,
    limit: LimitArg = 20,
    cursor: CursorArg = None,
) -> MemoriesPage:
    """List an agent's long-term memories, newest first, a page at a time (to browse them; to find the
    ones about something, use recall_memories)."""
    engram = _engram(ctx)
    ns, name = engram.namespace(namespace), engram.agent(agent)
    with engram_errors():
        page = await engram.client.list_memories(ns, name, limit=limit, cursor=cursor)
    return MemoriesPage(namespace=ns, agent=name, items=page.items, next_cursor=page.next_cursor)


async def forget_memory(
    ctx: EngramContext,
    memory_id: Annotated[int, Field(ge=1, description="The memory's `id`, as recall or list_memories gave it.")],
    agent: AgentArg = None,
    namespace: NamespaceArg = None,
) -> ForgetOutput:
    """Permanently delete one long-term memory of an agent. It cannot be undone. The turns it came from stay
    (to erase a turn and everything drawn from it, use redact_turn)."""
    engram = _engram(ctx)
    ns, name = engram.namespace(namespace), engram.agent(agent)
    with engram_errors():
        await engram.client.forget(ns, name, memory_id)
    return ForgetOutput(namespace=ns, agent=name, memory_id=memory_id, forgotten=True)


async def redact_turn(
    ctx: EngramContext,
    session: SessionArg,
    seq: Annotated[int, Field(ge=1, description="The turn's number in the session (`seq`).")],
    namespace: NamespaceArg = None,
) -> RedactOutput:
    """Permanently erase what a turn said (its number stays, marked redacted) and delete every insight and
    memory, of any agent, that cites it as evidence. It cannot be undone. Redacting again changes nothing."""
    engram = _engram(ctx)
    ns = engram.namespace(namespace)
    with engram_errors():
        result = await engram.client.redact_turn(ns, session, seq)
    return RedactOutput(namespace=ns, session=session, **result.model_dump())
