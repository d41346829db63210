"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command

from shared.migrations import config


def test_models_and_migrations_agree(services) -> None:
    command.check(config(services.database_url))  # raises if autogenerate would find a difference
