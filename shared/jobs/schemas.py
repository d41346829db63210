from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.schemas import Schema


class JobKind(StrEnum):
    """The long operations (DESIGN.md section 2)."""

    INTEGRATE = "integrate"
    TRUNCATE = "truncate"


class JobStatus(StrEnum):
    """The states of a job (DESIGN.md section 3). ``queued -> running -> succeeded | failed |
    cancelled``; a running job whose worker was lost, or that failed in a retryable way, goes back
    to ``queued`` within its attempt budget. A queued job may also be cancelled directly."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


# Unfinished jobs hold their session's queue; finished ones are kept for reading, then purged.
OPEN = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# The same, as the SQL list that statements and the partial index of open jobs use.
OPEN_SQL = "(" + ",".join(f"'{s.value}'" for s in OPEN) + ")"


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
