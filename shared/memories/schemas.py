"""The memory stream as clients see it: memories, recall and context."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.models.states import MemoryKind
from shared.schemas import InputSchema, SafeStr, Schema, Slug
from shared.sessions.schemas import InsightRead
from shared.turns.schemas import TurnRead


class MemoryRead(Schema):
    id: int
    kind: MemoryKind
    speaker: str | None = Field(description="Who said it (observations).")
    content: str
    importance: int = Field(ge=1, le=10)
    evidence: list[int] = Field(description="Seqs of the turns it rests on, in `session` at `generation`.")
    session: str = Field(description="The session the memory came from.")
    generation: int = Field(description="The session's generation its evidence seqs belong to.")
    occurred_at: datetime = Field(description="When what it remembers happened.")
    created_at: datetime
    reinforcements: int = Field(description="Times a near-duplicate was seen again instead of stored twice.")
    last_seen_at: datetime = Field(description="The last time it was written or reinforced.")


class RecallRequest(InputSchema):
    query: SafeStr = Field(min_length=1, max_length=2000, description=(
        "What to remember, in plain words: any of its words may match. Quoted phrases, `or` and `-word` "
        "(web-search syntax) make it a strict query instead."))
    limit: int = Field(10, ge=1, le=100)
    session: Slug | None = Field(None, description="Only memories from this session.")
    kinds: list[MemoryKind] | None = Field(None, min_length=1, description="Only these kinds.")
    explain: bool = Field(False, description="Add to each item `explain`: its rank and score in each ranking fused.")


class Ranked(Schema):
    """A memory's place in one ranking of a recall."""

    rank: int = Field(description="1 for the best of that ranking.")
    score: float = Field(description="What that ranking orders by.")


class FullTextRanked(Ranked):
    terms: dict[str, float] = Field(description=(
        "The query's terms (stemmed lexemes) the memory holds, each with what it adds to the BM25 score."))


class RecallExplanation(Schema):
    """Why a memory came back: its place in each ranking that recall fused."""

    full_text: FullTextRanked | None = Field(description=(
        "The full-text ranking: BM25 over the agent's memories; null when the memory was not among its candidates."))
    vector: Ranked | None = Field(description=(
        "The vector ranking (score: cosine similarity), with an embedder; null when absent from it."))


class RecalledMemory(MemoryRead):
    score: float = Field(description=(
        "What recall ranks by: the BM25 score in full-text mode; with an embedder, the reciprocal rank fusion of "
        "the BM25 and vector ranks. Equal scores go to the most recent memory; a memory whose turns better ones "
        "all cite already comes after those that cite a new turn."))
    explain: RecallExplanation | None = Field(None, description="With `explain: true` in the request.")


class RecallResult(Schema):
    items: list[RecalledMemory]


class ContextRead(Schema):
    session: str
    participant: str
    query: str = Field(description="What memories were recalled for (the latest turns when none was given).")
    turns: list[TurnRead] = Field(description="The participant's latest visible turns, oldest first.")
    memories: list[RecalledMemory]
    insights: list[InsightRead] = Field(description="Its latest insights in this session, newest first.")
    text: str = Field(description="All of it rendered for a prompt, at most `max_chars` characters.")
