"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from cli.main import ROOT


def test_models_and_migrations_agree(services) -> None:  # type: ignore[no-untyped-def]
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = services.database_url
    command.check(cfg)  # raises if autogenerate would find a difference
