from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.schemas import InputSchema, JsonObject, SafeStr, Schema, Slug


class SessionCreate(InputSchema):
    name: Slug | None = Field(None, description="Omit to get a generated name.")
    description: SafeStr = Field("", max_length=4000)
    data: JsonObject = Field(default_factory=dict, description="Free JSON object kept with the session.")


class SessionPatch(InputSchema):
    """A JSON merge patch (RFC 7396) of the session's mutable fields."""

    description: SafeStr | None = Field(None, max_length=4000)
    data: dict[str, Any] | None = Field(None, description="Merged into `data`; a null member removes it.")


class SessionRead(Schema):
    name: str
    description: str
    data: dict[str, Any]
    participants: list[str]
    turn_count: int = Field(description="Turns appended since creation or the last truncate (the last seq).")
    generation: int = Field(description="Starts at 1; every truncate adds 1.")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    expire_time: datetime | None = Field(description="When a deleted session is purged for good.")


# Alike in shape to turns/schemas.py's results (plain field declarations), not in meaning: each its own API schema.
class ParticipantRead(Schema):
    name: str
    bound_at: datetime
    last_integration_turn: int = Field(description="Last seq integrated for this participant (its watermark).")
    pending_turns: int = Field(description="Turns it can see that are not integrated yet.")


class InsightRead(Schema):
    id: int
    content: str
    importance: int = Field(ge=1, le=10)
    evidence: list[int] = Field(description="Seqs of the turns the insight rests on.")
    created_at: datetime
