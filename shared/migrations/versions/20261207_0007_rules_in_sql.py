"""The rules statements of several domains apply, written once in SQL: what a participant sees,
which turns it has not integrated, and the namespace wall

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Each is a SQL function of one SELECT, not STRICT, so PostgreSQL inlines it into the statement that
calls it: the planner sees the expression (or, for the wall, the query) itself, as if written
there (no function call per row, indexes and plans as before).
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
    # The namespace wall (DESIGN.md section 4): the admin key reaches every namespace, a namespace
    # key only its own. $1 is the SHA-256 of the caller's namespace key, or NULL for the admin key
    # (and in open mode); $2 the namespace asked for. One row: whether the key is known (false for
    # an unknown or revoked key: 401), and the namespace's id when the caller reaches it (NULL for
    # one that does not exist and for another key's alike: the same 404).
    op.execute("""
        CREATE FUNCTION reached_namespace(key_hash text, namespace text)
        RETURNS TABLE (known boolean, id bigint) LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT c.admin OR c.key_namespace IS NOT NULL,
                   (SELECT n.id FROM namespaces n WHERE n.name = $2 AND (c.admin OR n.id = c.key_namespace))
            FROM (SELECT $1 IS NULL AS admin,
                         (SELECT k.namespace_id FROM api_keys k WHERE k.secret_hash = $1) AS key_namespace) c
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION reached_namespace(text, text)")
    op.execute("DROP FUNCTION not_yet_integrated(bigint, bigint, bigint)")
    op.execute("DROP FUNCTION sees(text, text[], text)")
