"""The memory stream of an agent: list, forget, recall; and a participant's context."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam

from api.deps import DB, AgentName, NamespaceDep, PageParams, SessionName, SettingsDep
from shared.memories import service
from shared.memories.schemas import ContextRead, MemoryRead, RecallRequest, RecallResult
from shared.schemas import Page

router = APIRouter(prefix="/v1/namespaces/{namespace}", tags=["memories"])

MemoryId = Annotated[int, PathParam(ge=1, le=2**62, description="The memory's id.")]


@router.get("/agents/{agent}/memories", response_model=Page[MemoryRead])
def list_memories(ns: NamespaceDep, agent: AgentName, db: DB, page: PageParams) -> Page[MemoryRead]:
    """List the agent's memory stream (observations and reflections), newest first."""
    return service.list_(db, ns, agent, cursor=page[1], limit=page[0])


@router.delete("/agents/{agent}/memories/{memory}", status_code=204)
def forget_memory(ns: NamespaceDep, agent: AgentName, memory: MemoryId, db: DB) -> Response:
    """Forget one memory of the agent."""
    service.forget(db, ns, agent, memory)
    return Response(status_code=204)


@router.post("/agents/{agent}/recall", response_model=RecallResult)
def recall(ns: NamespaceDep, agent: AgentName, body: RecallRequest, db: DB, settings: SettingsDep) -> RecallResult:
    """Recall the agent's memories most useful for a query, best first. Full-text relevance is BM25 over the
    agent's memories (any of the query's words, stemmed, weighed by how rare each is among its memories; web-search
    syntax for a strict query), fused by reciprocal rank fusion with vector similarity when an embedder is
    configured (ENGRAM_RECALL_* settings). A memory's age never keeps it out: equal scores go to the most recent.
    A memory that a better one already says (it cites the same turns of the same session and contains its words)
    is left out, and the next best takes its place. Each item cites its evidence: the seqs of its session's turns.
    With `explain`, each item also says its rank and score in each ranking fused, and the query's terms it holds."""
    return service.recall(db, ns, agent, body, settings)


@router.get("/sessions/{session}/participants/{participant}/context", response_model=ContextRead)
def get_context(ns: NamespaceDep, session: SessionName, participant: AgentName, db: DB, settings: SettingsDep,
                query: Annotated[str | None, Query(max_length=2000, description=(
                    "What to recall memories for; default: the latest turns."))] = None,
                max_chars: Annotated[int, Query(ge=100, le=200_000, description="Budget of `text`.")] = 8000,
                turns: Annotated[int, Query(ge=0, le=200, description="Latest turns to include.")] = 20,
                memories: Annotated[int, Query(ge=0, le=100, description="Memories to recall.")] = 10,
                insights: Annotated[int, Query(ge=0, le=100, description="Latest insights to include.")] = 10,
                ) -> ContextRead:
    """Everything a participant needs for its next reply, in one call: its latest visible turns, the memories
    recalled for `query`, its latest insights, each with their evidence, and a `text` rendering of all of it
    that fits in `max_chars`."""
    return service.context(db, ns, session, participant, query=query, max_chars=max_chars, turns_limit=turns,
                           memories_limit=memories, insights_limit=insights, settings=settings)
