from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.models.states import JobKind, JobStatus
from shared.schemas import Schema


class RunOutcome(StrEnum):
    """What handling one message of a job came to (the worker's logs and metrics, not a job state)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"  # failed in a retryable way: back in the queue
    FENCED = "fenced"  # another run owns the job now: this one wrote nothing more
    SUPERSEDED = "superseded"  # failed because a truncate came between
    SKIPPED = "skipped"  # not claimable: a duplicate or early message


class Progress(BaseModel):
    completed: int
    total: int


class JobLinks(BaseModel):
    self: str


class ParticipantResult(BaseModel):
    name: str
    turns_integrated: int
    insights_created: int
    memories_created: int
    watermark: int


class JobRead(Schema):
    id: str
    kind: JobKind
    status: JobStatus
    session: str
    progress: Progress = Field(description="For an integration: participants done out of those bound at start.")
    result: dict[str, Any] | None = Field(
        description="integrate: {participants: [{name, turns_integrated, insights_created, memories_created, "
        "watermark}]}; truncate: {turns_deleted, generation}."
    )
    error: dict[str, Any] | None = Field(description="Problem details (RFC 9457) when the job failed.")
    attempts: int = Field(description="Runs started so far (a worker lost mid-run makes another).")
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks
