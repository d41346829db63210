"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command

from shared.migrations import config


def test_models_and_migrations_agree(services) -> None:
    command.check(config(services.database_url))  # raises if autogenerate would find a difference


def test_every_state_column_is_constrained_to_its_enum(settings) -> None:
    """Migration 0006 writes the enums' values out; they must still be the enums'."""
    import re

    from shared.kit import connector
    from shared.kit.db import unit_of_work
    from shared.models.states import DeliveryStatus, JobKind, JobStatus, MemoryKind

    expected = {"ck_jobs_kind": JobKind, "ck_jobs_status": JobStatus, "ck_webhook_deliveries_status": DeliveryStatus,
                "ck_memories_kind": MemoryKind}
    with unit_of_work(settings) as db:
        rows = connector.fetch_all(db, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                       "WHERE conname = ANY(%(names)s) AND convalidated", {"names": list(expected)})
    found: dict[str, str] = {name: definition for name, definition in rows}
    assert sorted(found) == sorted(expected)
    for name, enum in expected.items():
        assert set(re.findall(r"'([^']*)'", found[name])) == {e.value for e in enum}, found[name]


def test_the_rules_in_sql_are_inlined(settings) -> None:
    """Migration 0007's functions (what a participant sees, which turns it has not integrated) are
    inlined by PostgreSQL into the statements that call them: the plan shows their expressions, no
    call, so the planner bounds the scan of a session's turns by seq as before."""
    from shared.kit import connector
    from shared.kit.db import unit_of_work

    with unit_of_work(settings) as db:
        plan = "\n".join(r[0] for r in connector.fetch_all(db, """
            EXPLAIN VERBOSE SELECT t.seq FROM turns t JOIN participants p ON p.session_id = t.session_id
            JOIN agents a ON a.id = p.agent_id
            WHERE t.session_id = 1 AND not_yet_integrated(t.seq, p.last_integration_turn, p.bound_after_seq)
              AND sees(a.name, t.visible_to, t.speaker)"""))
    assert "sees(" not in plan and "not_yet_integrated(" not in plan, plan
    assert "GREATEST(p.last_integration_turn, p.bound_after_seq)" in plan, plan
    assert "= ANY" in plan, plan


def test_the_namespace_wall_is_inlined(settings) -> None:
    """Migration 0007's namespace wall (reached_namespace) is inlined into the statements that
    apply it: no function scan, the key and the namespace looked up through their indexes."""
    from shared.kit import connector
    from shared.kit.db import unit_of_work
    from shared.namespaces.repository import RESOLVE

    with unit_of_work(settings) as db:
        plan = "\n".join(r[0] for r in connector.fetch_all(
            db, "EXPLAIN " + RESOLVE.replace("%(key)s", "'k'").replace("%(namespace)s", "'n'")))
    assert "Function Scan" not in plan and "reached_namespace" not in plan, plan
    assert "api_keys" in plan and "namespaces" in plan, plan
