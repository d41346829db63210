"""The API's bodies as the client reads and sends them.

These are the client's own models: it installs without the server. A test compares each of them
with the schema of the same name in the server's OpenAPI document, so the two cannot drift apart
unnoticed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _no_nul(value: str) -> str:
    # The server refuses U+0000 (PostgreSQL cannot store it): say so before sending anything.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


class Model(BaseModel):
    # A model's validator is built when it first reads a body, not at import: a program that
    # reads jobs does not pay for the other models.
    model_config = ConfigDict(defer_build=True)


class JobKind(StrEnum):
    INTEGRATE = "integrate"
    TRUNCATE = "truncate"


class JobStatus(StrEnum):
    """``queued -> running -> succeeded | failed | cancelled`` (a running job may go back to queued)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Page(Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null on the last.")


class Namespace(Model):
    name: str
    description: str
    created_at: datetime


class Key(Model):
    id: str
    description: str
    created_at: datetime


class KeyCreated(Key):
    secret: str = Field(description="The bearer secret. Shown once; only its hash is stored.")


class Agent(Model):
    name: str
    description: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class MemoryKind(StrEnum):
    """An observation is a turn the agent saw; a reflection is an insight of the integrator."""

    OBSERVATION = "observation"
    REFLECTION = "reflection"


class Memory(Model):
    id: int
    kind: MemoryKind
    speaker: str | None
    content: str
    importance: int
    evidence: list[int]
    session: str
    generation: int
    occurred_at: datetime
    created_at: datetime
    reinforcements: int
    last_seen_at: datetime


class Ranked(Model):
    """A memory's place in one ranking of a recall."""

    rank: int
    score: float


class FullTextRanked(Ranked):
    terms: dict[str, float]  # the query's terms the memory holds, with what each adds to its BM25 score


class RecallExplanation(Model):
    """Why a memory came back (``explain=True``): its place in each ranking recall fused."""

    full_text: FullTextRanked | None
    vector: Ranked | None


class RecalledMemory(Memory):
    score: float
    explain: RecallExplanation | None = None


class RecallResult(Model):
    items: list[RecalledMemory]


class Session(Model):
    """A session, with the ``ETag`` the server sent along (pass it as ``if_match`` to update safely)."""

    name: str
    description: str
    data: dict[str, Any]
    participants: list[str]
    turn_count: int
    generation: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    expire_time: datetime | None
    etag: str | None = Field(None, exclude=True, description="The response's ETag header; not part of the body.")


class Participant(Model):
    name: str
    bound_at: datetime
    last_integration_turn: int
    pending_turns: int


class Insight(Model):
    id: int
    content: str
    importance: int
    evidence: list[int]
    created_at: datetime


class TurnIn(Model):
    """A turn to append. Unknown fields are an error, as on the server."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    speaker: SafeStr = Field(min_length=1, max_length=128)
    content: SafeStr
    visible_to: list[Slug] | None = Field(None, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = Field(None, description="When it was said, with a time zone; default: now.")


# Turn, Job, DeliveryAttempt and Delivery repeat the server's fields on purpose: the client does not
# import the server; tests/unit/test_client_models.py checks each against the API's OpenAPI schema.
class Turn(Model):
    seq: int
    speaker: str
    content: str
    visible_to: list[str] | None
    metadata: dict[str, Any]
    occurred_at: datetime
    created_at: datetime
    redacted_at: datetime | None = None


class AppendResult(Model):
    first_seq: int
    last_seq: int
    turns: list[Turn]


class Progress(Model):
    completed: int
    total: int


class JobLinks(Model):
    self: str


class ParticipantResult(Model):
    """One entry of an integration's ``result["participants"]``."""

    name: str
    turns_integrated: int
    insights_created: int
    memories_created: int
    watermark: int


class Job(Model):  # the fields of the API's JobRead (and of JobRow, the columns it is read from)
    id: str
    kind: JobKind
    status: JobStatus
    session: str
    progress: Progress
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks


class RedactResult(Model):
    seq: int
    redacted_at: datetime
    insights_deleted: int
    memories_deleted: int


class Context(Model):
    """What a participant needs for its next reply; ``text`` is ready for a prompt."""

    session: str
    participant: str
    query: str
    turns: list[Turn]
    memories: list[RecalledMemory]
    insights: list[Insight]
    text: str


class WebhookEvent(StrEnum):
    """What a webhook endpoint can subscribe to: a job finished, by its final status."""

    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


class WebhookIn(Model):
    """A webhook endpoint to register or update. Unknown fields are an error, as on the server."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    url: str = Field(max_length=2000, pattern=r"^https?://[^\s/?#]+([/?#]\S*)?$",
                     description="Where the events are POSTed (http:// or https://).")
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WebhookEvent))
    description: SafeStr = Field("", max_length=2000)


class Webhook(Model):
    name: str
    url: str
    events: list[WebhookEvent]
    description: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(description="The signing secret (`whsec_…`). Shown once, when the endpoint is created.")


class DeliveryStatus(StrEnum):
    """``pending -> sending -> succeeded``, or back to ``pending`` for a retry, ``failed`` when none is left."""

    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryAttempt(Model):  # mirrors AttemptRead and DeliveryRead of shared/webhooks/schemas.py
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None = Field(description="The receiver's HTTP status; None when no answer came.")
    error: str | None = Field(description="Why the try failed (non-2xx, timeout, refused address…).")


class Delivery(Model):
    id: str = Field(description="The `webhook-id` header of its requests: the same on every retry.")
    event: WebhookEvent
    job_id: str
    status: DeliveryStatus
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[DeliveryAttempt]
