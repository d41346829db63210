"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command

from shared.migrations import config


def test_models_and_migrations_agree(services) -> None:
    command.check(config(services.database_url))  # raises if autogenerate would find a difference


def test_every_state_column_is_constrained_to_its_enum(settings) -> None:
    """Migration 0006 writes the enums' values out; they must still be the enums'."""
    import re

    from sqlalchemy import text

    from shared.kit.db import unit_of_work
    from shared.models.states import DeliveryStatus, JobKind, JobStatus, MemoryKind

    expected = {"ck_jobs_kind": JobKind, "ck_jobs_status": JobStatus, "ck_webhook_deliveries_status": DeliveryStatus,
                "ck_memories_kind": MemoryKind}
    with unit_of_work(settings) as db:
        rows = db.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                               "WHERE conname = ANY(:names) AND convalidated"), {"names": list(expected)}).all()
    found: dict[str, str] = {name: definition for name, definition in rows}
    assert sorted(found) == sorted(expected)
    for name, enum in expected.items():
        assert set(re.findall(r"'([^']*)'", found[name])) == {e.value for e in enum}, found[name]
