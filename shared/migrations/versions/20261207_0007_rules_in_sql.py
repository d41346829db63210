"""The rules statements of several domains apply, written once in SQL: what a participant sees,
and which turns it has not integrated

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Each is a SQL function of plain expressions, IMMUTABLE and not STRICT, so PostgreSQL inlines it
into the statement that calls it: the planner sees the expression itself, as if written there
(no function call per row, indexes and plans as before).
"""
from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # DESIGN.md section 2, Turns: a participant sees the turns addressed to everyone, to it, or spoken by it.
    op.execute("""
        CREATE FUNCTION sees(agent text, visible_to text[], speaker text) RETURNS boolean
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT visible_to IS NULL OR agent = ANY (visible_to) OR speaker = agent $$
    """)
    # A turn the participant has not integrated: appended after it was bound and after its
    # watermark (participants.last_integration_turn).
    op.execute("""
        CREATE FUNCTION not_yet_integrated(seq bigint, last_integration_turn bigint, bound_after_seq bigint)
        RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT seq > greatest(last_integration_turn, bound_after_seq) $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION not_yet_integrated(bigint, bigint, bigint)")
    op.execute("DROP FUNCTION sees(text, text[], text)")
