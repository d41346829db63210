"""Memory stream: observations and reflections, full-text recall, turn times and redaction

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Existing memories came from insights: they become reflections, of the session's current generation,
happened when they were written. Existing turns happened when they were appended.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TSV = "to_tsvector('english'::regconfig, content)"


def upgrade() -> None:
    op.add_column("turns", sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE turns SET occurred_at = created_at")
    op.alter_column("turns", "occurred_at", nullable=False, server_default=sa.text("now()"))
    op.add_column("turns", sa.Column("redacted_at", sa.DateTime(timezone=True), nullable=True))

    op.add_column("memories", sa.Column("generation", sa.BigInteger(), nullable=False, server_default="1"))
    op.execute("UPDATE memories m SET generation = s.generation FROM sessions s WHERE s.id = m.session_id")
    op.add_column("memories", sa.Column("kind", sa.String(16), nullable=False, server_default="reflection"))
    op.add_column("memories", sa.Column("speaker", sa.String(128), nullable=True))
    op.add_column("memories", sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE memories SET occurred_at = created_at")
    op.alter_column("memories", "occurred_at", nullable=False, server_default=sa.text("now()"))
    op.add_column("memories", sa.Column("reinforcements", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("memories", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE memories SET last_seen_at = created_at")
    op.alter_column("memories", "last_seen_at", nullable=False, server_default=sa.text("now()"))
    op.add_column("memories", sa.Column("tsv", postgresql.TSVECTOR(), sa.Computed(TSV, persisted=True)))
    op.create_index("ix_memories_tsv", "memories", ["tsv"], postgresql_using="gin")

    # Vector recall where pgvector is available: one embedding per memory, in a table of its own so
    # that a PostgreSQL without pgvector runs the same schema in full-text mode.
    # One block, so that it also works when the migration is rendered as SQL (offline).
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
                EXECUTE 'CREATE EXTENSION IF NOT EXISTS vector';
                EXECUTE 'CREATE TABLE memory_embeddings (
                    memory_id bigint PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
                    agent_id bigint NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
                    dimensions integer NOT NULL,
                    embedding vector NOT NULL)';
                EXECUTE 'CREATE INDEX ix_memory_embeddings_agent ON memory_embeddings (agent_id)';
            END IF;
        END
        $$
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS memory_embeddings")
    op.drop_index("ix_memories_tsv", table_name="memories")
    for column in ("tsv", "last_seen_at", "reinforcements", "occurred_at", "speaker", "kind", "generation"):
        op.drop_column("memories", column)
    op.drop_column("turns", "redacted_at")
    op.drop_column("turns", "occurred_at")
