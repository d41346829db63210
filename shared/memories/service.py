"""The memory stream: listing, forgetting, recall and the context of a participant's next reply."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from shared.agents import service as agents
from shared.config import Settings
from shared.embedders import Embedder, EmbedderError, TimedEmbedder, load_embedder
from shared.errors import NotFound
from shared.kit.db import UnitOfWork, unit_of_work
from shared.memories import ranking, vectors
from shared.memories import repository as repo
from shared.memories.context import render
from shared.memories.ranking import new_turns_first, without_repeats
from shared.memories.schemas import (
    ContextRead,
    FullTextRanked,
    MemoryRead,
    Ranked,
    RecalledMemory,
    RecallExplanation,
    RecallRequest,
    RecallResult,
)
from shared.models import Agent, Memory, Namespace
from shared.models.states import MemoryKind
from shared.schemas import Page, page_of
from shared.sessions import repository as sessions_repo
from shared.sessions import service as sessions
from shared.sessions.schemas import InsightRead
from shared.turns import repository as turns_repo
from shared.turns import service as turns

log = logging.getLogger("engram.recall")
_active: dict[tuple[Any, ...], Embedder | None] = {}


def active_embedder(settings: Settings) -> Embedder | None:
    """The configured embedder when this database can hold vectors, else None (full-text recall).
    Decided once per process and configuration; says so in the log when pgvector is missing."""
    key = (os.getpid(), settings.embedder, settings.database_url, settings.embedding_model,
           settings.embedding_dimensions)
    if key in _active:
        return _active[key]
    embedder = load_embedder(settings)
    if embedder is not None:
        with unit_of_work(settings) as db:
            usable = vectors.available(db)
            if usable:
                vectors.ensure_index(db, embedder.dimensions)
        if usable:
            log.info("recall is hybrid: full-text and vectors from the %s embedder (%d dimensions)",
                     embedder.name, embedder.dimensions)
        else:
            log.warning("ENGRAM_EMBEDDER=%s is set but PostgreSQL has no pgvector: recall is full-text only "
                        "(install pgvector and run `engram migrate` again)", settings.embedder)
            embedder = None
    _active[key] = None if embedder is None else TimedEmbedder(embedder)
    return _active[key]


def recall_mode(settings: Settings) -> str:
    """How recall ranks, for /readyz: `full-text`, `hybrid`, or full-text because pgvector is missing."""
    if settings.embedder.strip() in ("", "none"):
        return "full-text"
    try:
        embedder = active_embedder(settings)
    except ValueError as exc:  # a misconfigured ENGRAM_EMBEDDER: say so instead of failing readiness
        return f"full-text (embedder unusable: {exc})"
    return "hybrid" if embedder is not None else "full-text (pgvector missing; ENGRAM_EMBEDDER unused)"


# Web-search syntax asks for a strict query: a quoted phrase, `-word`, or an upper-case OR.
_STRICT = re.compile(r'"|(?:^|\s)-\w|\sOR\s')


def to_read(m: Memory) -> MemoryRead:
    return MemoryRead(id=m.id, kind=MemoryKind(m.kind), speaker=m.speaker, content=m.content, importance=m.importance,
                      evidence=m.evidence, session=m.session_name, generation=m.generation, occurred_at=m.occurred_at,
                      created_at=m.created_at, reinforcements=m.reinforcements, last_seen_at=m.last_seen_at)


def list_(db: UnitOfWork, ns: Namespace, agent_name: str, *, cursor: str | None, limit: int) -> Page[MemoryRead]:
    agent = agents.get(db, ns, agent_name)
    return page_of(lambda before, n: repo.list_before(db, agent.id, before, n), cursor, int, limit,
                   item=to_read, position=lambda m: m.id)


def forget(db: UnitOfWork, ns: Namespace, agent_name: str, memory_id: int) -> None:
    agent = agents.get(db, ns, agent_name)
    if not repo.delete_one(db, agent.id, memory_id):
        raise NotFound(f"agent '{agent_name}' has no memory {memory_id}")


def _explained(row: dict[str, Any]) -> RecallExplanation:
    full_text = vector = None
    if row["full_text_rank"] is not None:
        full_text = FullTextRanked(rank=row["full_text_rank"], score=round(float(row["full_text_score"]), 6),
                                   terms={t: round(float(s), 6) for t, s in sorted(
                                       (row["full_text_terms"] or {}).items(), key=lambda ts: -float(ts[1]))})
    if row["vector_rank"] is not None:
        vector = Ranked(rank=row["vector_rank"], score=round(float(row["vector_score"]), 6))
    return RecallExplanation(full_text=full_text, vector=vector)


def _recalled(row: dict[str, Any], explain: bool) -> RecalledMemory:
    return RecalledMemory(
        id=row["id"], kind=MemoryKind(row["kind"]), speaker=row["speaker"], content=row["content"],
        importance=row["importance"], evidence=row["evidence"], session=row["session_name"],
        generation=row["generation"], occurred_at=row["occurred_at"], created_at=row["created_at"],
        reinforcements=row["reinforcements"], last_seen_at=row["last_seen_at"], score=round(float(row["score"]), 6),
        explain=_explained(row) if explain else None)


def ranked(db: UnitOfWork, agent: Agent, body: RecallRequest, settings: Settings, *, limit: int) -> list[dict[str, Any]]:
    """The agent's ``limit`` memories best for the request, best first, as rows of
    repository.recall: full-text (BM25) over the candidates of ranking.candidate_terms, fused with
    the vector ranking when an embedder answers."""
    embedder = active_embedder(settings)
    query_vector = None
    if embedder is not None:
        try:
            query_vector = embedder.embed([body.query])[0]
        except EmbedderError as exc:
            # Recall still answers, by full-text: a slow or failing embedder must not take it down.
            log.warning("recall without vectors: the embedder failed (%s)", exc)
    strict = bool(_STRICT.search(body.query))
    terms = repo.query_terms(db, agent.id, body.query, strict)
    matching = terms.strict_query if strict else ranking.any_of(
        ranking.candidate_terms(terms.terms, settings.recall_max_scored))
    return repo.recall(db, repo.RecallQuery(
        agent_id=agent.id, terms=terms, matching=matching, limit=limit, session=body.session,
        kinds=[k.value for k in body.kinds] if body.kinds else None,
        k1=settings.recall_bm25_k1, b=settings.recall_bm25_b, scored=settings.recall_max_scored,
        candidates=settings.recall_candidates, rrf_k=settings.recall_rrf_k, w_vectors=settings.recall_weight_vectors,
        w_reflections=settings.recall_weight_reflections, agent_name=agent.name,
        w_own_words=settings.recall_weight_own_words, explain=body.explain), query_vector)


def _recall(db: UnitOfWork, agent: Agent, body: RecallRequest, settings: Settings) -> list[RecalledMemory]:
    rows = ranked(db, agent, body, settings, limit=body.limit * OVERFETCH)
    return [_recalled(r, body.explain) for r in new_turns_first(without_repeats(rows))[:body.limit]]


#: Recall ranks this many times the memories asked for, so that the ones ``without_repeats`` leaves
#: out can be replaced by the next best.
OVERFETCH = 3


def recall(db: UnitOfWork, ns: Namespace, agent_name: str, body: RecallRequest, settings: Settings) -> RecallResult:
    """The agent's memories most useful for the query, best first."""
    agent = agents.get(db, ns, agent_name)
    return RecallResult(items=_recall(db, agent, body, settings))


def context(db: UnitOfWork, ns: Namespace, session_name: str, participant: str, *, query: str | None, max_chars: int,
            turns_limit: int, memories_limit: int, insights_limit: int, settings: Settings) -> ContextRead:
    """What a participant needs before its next reply, in one read."""
    s = sessions.get(db, ns, session_name)
    agent = agents.get(db, ns, participant)
    bound = sessions_repo.participant(db, s.id, agent.id)
    if bound is None:
        raise NotFound(f"agent '{participant}' is not a participant of session '{session_name}'")
    latest = list(reversed(turns_repo.latest_seen(db, s.id, participant, bound.bound_after_seq, turns_limit)))
    turn_reads = [turns.to_read(t) for t in latest]
    if not query:
        query = " ".join(t.content for t in latest[-3:])[:2000]
    memories = _recall(db, agent, RecallRequest(query=query, limit=memories_limit), settings) if query.strip() else []
    insights = [InsightRead.model_validate(i) for i in repo.latest_insights(db, s.id, agent.id, insights_limit)]
    return ContextRead(session=s.name, participant=participant, query=query, turns=turn_reads, memories=memories,
                       insights=insights, text=render(participant, turn_reads, memories, insights, max_chars))
