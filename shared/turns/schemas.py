from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field

from shared.schemas import InputSchema, JsonObject, SafeStr, Schema, Slug


def _in_utc_range(value: datetime) -> datetime:
    # "0001-01-01T00:00:00+01:00" is year 0 in UTC, which PostgreSQL stores (as BC) but Python's
    # datetime, and so every read of the turn, cannot represent.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall within the years 1 to 9999 once converted to UTC") from None

class TurnCreate(InputSchema):
    speaker: SafeStr = Field(min_length=1, max_length=128, description="Who spoke: a participant or anyone else.")
    content: SafeStr = Field(description="The text; at most ENGRAM_MAX_TURN_CHARS characters.")
    visible_to: list[Slug] | None = Field(
        None, max_length=100,
        description="Participants that see this turn; omit for everyone. The speaker always sees its own turn.",
    )
    metadata: JsonObject = Field(default_factory=dict)
    occurred_at: Annotated[AwareDatetime, AfterValidator(_in_utc_range)] | None = Field(
        None, description="When it was said (RFC 3339 with a time zone); default: the append time. Lets a client "
        "import a past conversation with its real times; recall weighs recency by it.")


class TurnBatch(InputSchema):
    turns: list[TurnCreate] = Field(min_length=1, description="Appended atomically: all or none.")


class TurnRead(Schema):
    seq: int
    speaker: str
    content: str
    visible_to: list[str] | None
    metadata: dict[str, Any]
    occurred_at: datetime
    created_at: datetime
    redacted_at: datetime | None = Field(None, description="Set when the turn was redacted: its content is erased.")


class RedactResult(Schema):
    seq: int
    redacted_at: datetime
    insights_deleted: int = Field(description="Insights that cited the turn, deleted with it.")
    memories_deleted: int = Field(description="Memories that cited the turn, deleted with it.")


class AppendResult(Schema):
    first_seq: int
    last_seq: int
    turns: list[TurnRead]
