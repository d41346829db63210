from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column
from shared.models.states import MemoryKind, sql_list


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Memory(Base):
    """An entry of an agent's memory stream: an observation (a turn it saw) or a reflection (an
    insight of the integrator). It outlives the session it came from (and its truncate)."""

    __tablename__ = "memories"
    __table_args__ = (
        Index("ix_memories_agent_id_id", "agent_id", "id"),
        # Full-text recall: the GIN index of the generated tsvector (see `tsv`).
        Index("ix_memories_tsv", "tsv", postgresql_using="gin"),
        CheckConstraint(f"kind IN {sql_list(MemoryKind)}", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # The session's name is copied so the memory still names it after the session is purged.
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    session_name: Mapped[str] = mapped_column(String(63))
    # The session's generation the evidence seqs belong to (a truncate restarts the numbering).
    generation: Mapped[int] = mapped_column(default=1, server_default="1")
    kind: Mapped[str] = mapped_column(String(16), default=MemoryKind.REFLECTION.value,  # a MemoryKind
                                      server_default=MemoryKind.REFLECTION.value)
    speaker: Mapped[str | None] = mapped_column(String(128))  # an observation's speaker
    content: Mapped[str]
    importance: Mapped[int] = mapped_column(SmallInteger)
    evidence: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    job_id: Mapped[str | None] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = created_at_column()  # when what it remembers happened
    created_at: Mapped[datetime] = created_at_column()
    # A near-duplicate seen again reinforces the memory instead of repeating it.
    reinforcements: Mapped[int] = mapped_column(default=0, server_default="0")
    last_seen_at: Mapped[datetime] = created_at_column()
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, content)", persisted=True))
    # Its length for BM25: the positions of its tsvector (migration 0005's memory_doc_length).
    doc_length: Mapped[int | None] = mapped_column(
        Integer, Computed("memory_doc_length(to_tsvector('english'::regconfig, content))", persisted=True))


# Recall's BM25 statistics of an agent's memories, kept by triggers on `memories` in the transaction
# that writes or deletes them (migration 0005); never written by the application.


class MemoryCorpus(Base):
    """How many memories an agent has, and their total length (the average length of BM25)."""

    __tablename__ = "memory_corpus"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    docs: Mapped[int]
    total_length: Mapped[int]


class MemoryTerm(Base):
    """How many of an agent's memories hold a lexeme (its document frequency)."""

    __tablename__ = "memory_terms"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    lexeme: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    df: Mapped[int]
