from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.schemas import InputSchema, SafeStr, Schema


class NamespaceUpsert(InputSchema):
    description: SafeStr = Field("", max_length=2000)


class NamespaceRead(Schema):
    name: str
    description: str
    created_at: datetime


class KeyCreate(InputSchema):
    description: SafeStr = Field("", max_length=2000, description="What the key is for.")


class KeyRead(Schema):
    id: str
    description: str
    created_at: datetime


class KeyCreated(KeyRead):
    secret: str = Field(description="The bearer secret. Shown once; only its hash is stored.")
