"""Recall by BM25: each memory's length, each agent's document frequencies and corpus size, kept by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

BM25 needs, per agent, how many of its memories hold each lexeme (``memory_terms.df``), how many
memories it has and their total length (``memory_corpus``), and each memory's length in tokens
(``memories.doc_length``: the positions of its tsvector; stopwords are not counted, and PostgreSQL
caps positions at 16383, 256 per lexeme). Triggers on ``memories`` keep them in the transaction that
writes or deletes memories, whatever the path (integration, forgetting, redaction, deleting an
agent), so that no code path has to remember to. Existing memories are counted here.

Every trigger locks the agents' corpus rows first, in agent order: the writers of one agent's
statistics queue there, so they cannot deadlock on its lexemes. A df that falls to 0 is deleted.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DOC_LENGTH = "memory_doc_length(to_tsvector('english'::regconfig, content))"

# A tsvector's length in tokens: the count of its positions (a lexeme stored without positions
# counts once). Immutable, so that a generated column may use it.
LENGTH_FUNCTION = """
    CREATE FUNCTION memory_doc_length(tsv tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer FROM unnest(tsv) $$
"""

# Memories inserted (transition table ``added``, one statement): corpus rows first, then lexemes,
# each in key order.
STATS_ADD = """
    CREATE FUNCTION memory_stats_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO memory_corpus AS c (agent_id, docs, total_length)
        SELECT agent_id, count(*), sum(doc_length) FROM added GROUP BY agent_id ORDER BY agent_id
        ON CONFLICT (agent_id) DO UPDATE SET docs = c.docs + excluded.docs,
                                             total_length = c.total_length + excluded.total_length;
        INSERT INTO memory_terms AS t (agent_id, lexeme, df)
        SELECT a.agent_id, w.lexeme, count(*) FROM added a, unnest(a.tsv) w GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (agent_id, lexeme) DO UPDATE SET df = t.df + excluded.df;
        RETURN NULL;
    END
    $$"""

# An applied migration, never edited; the remove trigger is the add trigger's mirror, so alike in shape.
# Memories deleted (transition table ``removed``, one statement). The memories of a deleted agent
# are skipped: its statistics go with it (ON DELETE CASCADE).
STATS_REMOVE = """
    CREATE FUNCTION memory_stats_remove() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM memory_corpus WHERE agent_id IN (SELECT agent_id FROM removed) ORDER BY agent_id FOR UPDATE;
        UPDATE memory_corpus c SET docs = greatest(0, c.docs - r.docs), total_length = greatest(0, c.total_length - r.length)
        FROM (SELECT agent_id, count(*) AS docs, sum(doc_length) AS length FROM removed GROUP BY agent_id) r
        WHERE c.agent_id = r.agent_id;
        WITH r AS (SELECT x.agent_id, w.lexeme, count(*) AS n FROM removed x, unnest(x.tsv) w
                   WHERE x.agent_id IN (SELECT id FROM agents) GROUP BY 1, 2),
        gone AS (DELETE FROM memory_terms t USING r
                 WHERE t.agent_id = r.agent_id AND t.lexeme = r.lexeme AND t.df <= r.n)
        UPDATE memory_terms t SET df = t.df - r.n FROM r
        WHERE t.agent_id = r.agent_id AND t.lexeme = r.lexeme AND t.df > r.n;
        RETURN NULL;
    END
    $$"""

# A memory's indexed text changed (row by row: an update of text is rare): its old lexemes out,
# its new ones in.
STATS_CHANGE = """
    CREATE FUNCTION memory_stats_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE memory_corpus SET total_length = greatest(0, total_length - OLD.doc_length + NEW.doc_length)
        WHERE agent_id = NEW.agent_id;
        WITH lost AS (SELECT unnest(tsvector_to_array(OLD.tsv)) AS lexeme
                      EXCEPT SELECT unnest(tsvector_to_array(NEW.tsv))),
        gone AS (DELETE FROM memory_terms t
                 WHERE t.agent_id = OLD.agent_id AND t.df <= 1 AND t.lexeme IN (SELECT lexeme FROM lost))
        UPDATE memory_terms t SET df = t.df - 1
        WHERE t.agent_id = OLD.agent_id AND t.df > 1 AND t.lexeme IN (SELECT lexeme FROM lost);
        INSERT INTO memory_terms AS t (agent_id, lexeme, df)
        SELECT NEW.agent_id, lexeme, 1 FROM (SELECT unnest(tsvector_to_array(NEW.tsv)) AS lexeme
                                             EXCEPT SELECT unnest(tsvector_to_array(OLD.tsv))) added ORDER BY lexeme
        ON CONFLICT (agent_id, lexeme) DO UPDATE SET df = t.df + 1;
        RETURN NULL;
    END
    $$"""

TRIGGERS = (
    "CREATE TRIGGER memories_stats_add AFTER INSERT ON memories REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_stats_add()",
    "CREATE TRIGGER memories_stats_remove AFTER DELETE ON memories REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION memory_stats_remove()",
    # OF tsv: fires when an update targets a column tsv is generated from.
    "CREATE TRIGGER memories_stats_change AFTER UPDATE OF tsv ON memories "
    "FOR EACH ROW WHEN (OLD.tsv IS DISTINCT FROM NEW.tsv) EXECUTE FUNCTION memory_stats_change()",
)


def upgrade() -> None:
    op.execute(LENGTH_FUNCTION)
    op.add_column("memories", sa.Column("doc_length", sa.Integer(), sa.Computed(DOC_LENGTH, persisted=True)))
    op.create_table(
        "memory_corpus",
        sa.Column("agent_id", sa.BigInteger(), sa.ForeignKey("agents.id", ondelete="CASCADE",
                  name="fk_memory_corpus_agent_id_agents"), nullable=False),
        sa.Column("docs", sa.BigInteger(), nullable=False),
        sa.Column("total_length", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name="pk_memory_corpus"),
    )
    op.create_table(
        "memory_terms",
        sa.Column("agent_id", sa.BigInteger(), sa.ForeignKey("agents.id", ondelete="CASCADE",
                  name="fk_memory_terms_agent_id_agents"), nullable=False),
        sa.Column("lexeme", sa.Text(collation="C"), nullable=False),
        sa.Column("df", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "lexeme", name="pk_memory_terms"),
    )
    op.execute("INSERT INTO memory_corpus (agent_id, docs, total_length) "
               "SELECT agent_id, count(*), sum(doc_length) FROM memories GROUP BY agent_id")
    op.execute("INSERT INTO memory_terms (agent_id, lexeme, df) "
               "SELECT m.agent_id, w.lexeme, count(*) FROM memories m, unnest(m.tsv) w GROUP BY 1, 2")
    for statement in (STATS_ADD, STATS_REMOVE, STATS_CHANGE, *TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    for trigger in ("memories_stats_change", "memories_stats_remove", "memories_stats_add"):
        op.execute(f"DROP TRIGGER {trigger} ON memories")
    for function in ("memory_stats_change", "memory_stats_remove", "memory_stats_add"):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("memory_terms")
    op.drop_table("memory_corpus")
    op.drop_column("memories", "doc_length")
    op.execute("DROP FUNCTION memory_doc_length(tsvector)")
