from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.schemas import InputSchema, JsonObject, SafeStr, Schema, Slug


class TurnCreate(InputSchema):
    speaker: SafeStr = Field(min_length=1, max_length=128, description="Who spoke: a participant or anyone else.")
    content: SafeStr = Field(description="The text; at most ENGRAM_MAX_TURN_CHARS characters.")
    visible_to: list[Slug] | None = Field(
        None, max_length=100,
        description="Participants that see this turn; omit for everyone. The speaker always sees its own turn.",
    )
    metadata: JsonObject = Field(default_factory=dict)


class TurnBatch(InputSchema):
    turns: list[TurnCreate] = Field(min_length=1, description="Appended atomically: all or none.")


class TurnRead(Schema):
    seq: int
    speaker: str
    content: str
    visible_to: list[str] | None
    metadata: dict[str, Any]
    created_at: datetime


class AppendResult(Schema):
    first_seq: int
    last_seq: int
    turns: list[TurnRead]
