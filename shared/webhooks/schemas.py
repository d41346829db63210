"""A namespace's webhook endpoints and their deliveries, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from shared.models.states import DeliveryStatus
from shared.schemas import InputSchema, SafeStr, Schema


class Event(StrEnum):
    """The events an endpoint can subscribe to: a job finished, by its final status."""

    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


class WebhookPut(InputSchema):
    url: str = Field(max_length=2000, pattern=r"^https?://[^\s/?#]+([/?#]\S*)?$",
                     description="Where the events are POSTed: http:// or https://. Private, loopback and link-local "
                     "addresses are refused unless ENGRAM_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true.")
    events: list[Event] = Field(min_length=1, max_length=len(Event), description="The events to send.")
    description: SafeStr = Field("", max_length=2000)

    @field_validator("events")
    @classmethod
    def _distinct(cls, v: list[Event]) -> list[Event]:
        if len(set(v)) != len(v):
            raise ValueError("each event at most once")
        return v


class WebhookRead(Schema):
    name: str
    url: str
    events: list[Event]
    description: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret (Standard Webhooks `whsec_…`). Shown only when the endpoint "
                        "is created; verify each request's `webhook-signature` with it.")


class AttemptRead(Schema):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came.")
    error: str | None = Field(description="Why the try failed (non-2xx, timeout, refused address…).")


class DeliveryRead(Schema):
    id: str = Field(description="The `webhook-id` header of its requests: the same on every retry.")
    event: Event
    job_id: str
    status: DeliveryStatus
    next_attempt_at: datetime | None = Field(description="When the next try is due; null once it finished.")
    created_at: datetime
    finished_at: datetime | None
    attempts: list[AttemptRead] = Field(description="Each try so far, oldest first.")
