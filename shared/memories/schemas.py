"""The memory stream as clients see it: memories, recall and context."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from shared.schemas import InputSchema, SafeStr, Schema, Slug
from shared.sessions.schemas import InsightRead
from shared.turns.schemas import TurnRead


class MemoryKind(StrEnum):
    """An observation is a turn the agent saw; a reflection is an insight of the integrator."""

    OBSERVATION = "observation"
    REFLECTION = "reflection"


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


class RecalledMemory(MemoryRead):
    score: float = Field(description="Relevance, importance and recency, weighed by the ENGRAM_RECALL_* settings.")


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
