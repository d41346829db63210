from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column


class ActivitySession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("namespace_id", "name"),
        Index("ix_sessions_expire_time", "expire_time", postgresql_where="deleted_at IS NOT NULL"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    turn_count: Mapped[int] = mapped_column(default=0)
    # Bumped by every truncate; the fencing value that makes an older integration commit nothing.
    generation: Mapped[int] = mapped_column(default=1)
    # Bumped by every change of the session resource; its ETag.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    deleted_at: Mapped[datetime | None]
    expire_time: Mapped[datetime | None]


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("session_id", "agent_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    # The participant sees turns with seq > bound_after_seq: those appended while it is bound.
    bound_after_seq: Mapped[int] = mapped_column(default=0)
    last_integration_turn: Mapped[int] = mapped_column(default=0)
    bound_at: Mapped[datetime] = created_at_column()


class Turn(Base):
    """One turn; a row each, so an append is an insert, never a rewrite."""

    __tablename__ = "turns"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)  # (session_id, seq) is the read index
    speaker: Mapped[str] = mapped_column(String(128))
    content: Mapped[str] = mapped_column(Text)
    visible_to: Mapped[list[str] | None] = mapped_column(ARRAY(String(63)))  # NULL: everyone
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    occurred_at: Mapped[datetime] = created_at_column()  # given by the client, or the append time
    redacted_at: Mapped[datetime | None]  # set when the turn's content was erased


class Insight(Base):
    __tablename__ = "insights"
    __table_args__ = (Index("ix_insights_session_agent", "session_id", "agent_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    content: Mapped[str]
    importance: Mapped[int] = mapped_column(SmallInteger)
    evidence: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = created_at_column()
