"""The tools' typed inputs and outputs: their JSON schemas are what an agent host shows the model.

Outputs embed the client's own models (``Memory``, ``Session``, ``Context``…), so a tool answers
the same shapes as the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engram_client.models import (
    SLUG_PATTERN,
    Context,
    JobStatus,
    Memory,
    ParticipantResult,
    Progress,
    RecalledMemory,
    Session,
)

# --- arguments --------------------------------------------------------------------------------

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
NamespaceArg = Annotated[Slug | None, Field(
    description="The namespace (tenant). Leave it out to use this server's default namespace.")]
AgentArg = Annotated[Slug | None, Field(
    description="The agent whose memory this is. Leave it out to use this server's default agent.")]
SessionArg = Annotated[Slug, Field(description="The session's name (a slug, e.g. `kickoff`), as list_sessions shows it.")]
LimitArg = Annotated[int, Field(ge=1, le=200, description="How many items per page.")]
CursorArg = Annotated[str | None, Field(
    description="`next_cursor` of the previous page, to get the next one; leave it out for the first page.")]


class TurnInput(BaseModel):
    """One turn of the conversation to record."""

    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(min_length=1, max_length=128,
                         description="Who said it: an agent's name or any label such as `user`.")
    content: str = Field(description="What was said, verbatim.")
    visible_to: list[str] | None = Field(
        None, description="Only these participants (agent names) see the turn; leave it out for everyone.")
    metadata: dict[str, Any] | None = Field(None, description="Any JSON object to keep with the turn.")
    occurred_at: datetime | None = Field(
        None, description="When it was said (RFC 3339 with a time zone), to import a past conversation; default: now.")


MemoryKindArg = Literal["observation", "reflection"]


# --- results ----------------------------------------------------------------------------------

# Field declarations with their descriptions, alike in shape to the server's schemas (e.g. SessionRead)
# but not in meaning: these are the tools' own answers, which the model reads.
class AppendOutput(BaseModel):
    namespace: str
    session: str = Field(description="The session the turns went to (its generated name if it was created).")
    first_seq: int = Field(description="The number the session gave the first turn appended.")
    last_seq: int = Field(description="The number of the last one; redact_turn takes these numbers.")
    session_created: bool = Field(description="Whether this call created the session.")
    bound_agent: str | None = Field(description="The agent bound to the session by this call, if asked.")


class IntegrateOutput(BaseModel):
    namespace: str
    session: str
    job_id: str = Field(description="Engram's job; its state stays readable in Engram after this call.")
    status: JobStatus = Field(description="`succeeded`, or `queued`/`running` when `timeout_seconds` ran out first.")
    finished: bool = Field(description="False: the integration goes on in Engram; call again later to follow it.")
    coalesced: bool = Field(description="True when an integration already queued for the session was reused.")
    progress: Progress = Field(description="Participants integrated so far, of the total.")
    participants: list[ParticipantResult] = Field(
        description="Per participant: turns integrated, insights and memories created, new watermark.")


class RecallOutput(BaseModel):
    namespace: str
    agent: str
    query: str
    items: list[RecalledMemory] = Field(
        description="Best first. Each memory cites its evidence: the turn numbers (seq) of its session.")


class ContextOutput(Context):
    namespace: str


class SessionsPage(BaseModel):
    namespace: str
    items: list[Session]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class MemoriesPage(BaseModel):
    namespace: str
    agent: str
    items: list[Memory] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ForgetOutput(BaseModel):
    namespace: str
    agent: str
    memory_id: int
    forgotten: bool = Field(description="True: the memory is gone for good.")


class RedactOutput(BaseModel):
    namespace: str
    session: str
    seq: int
    redacted_at: datetime
    insights_deleted: int = Field(description="Insights that cited the turn, deleted with it.")
    memories_deleted: int = Field(description="Memories that cited the turn, deleted with it.")
