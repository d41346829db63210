from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.schemas import InputSchema, JsonObject, SafeStr, Schema


class AgentUpsert(InputSchema):
    description: SafeStr = Field("", max_length=4000, description="Who the agent is; given to the integrator.")
    metadata: JsonObject = Field(default_factory=dict)


class AgentRead(Schema):
    name: str
    description: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

