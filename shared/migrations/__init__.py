"""The Alembic migrations of the database, shipped inside the package so that an installed
Engram (a wheel, the container image) migrates without a checkout or an ``alembic.ini``.

``upgrade(url)`` brings a database to the latest revision; ``config(url)`` is the Alembic
configuration for other commands (``alembic.command.check``, ``revision``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).resolve().parent


def config(database_url: str) -> Config:
    """Alembic's configuration, built in code: the scripts are this package's directory."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str) -> None:
    """Apply every migration not yet applied (``alembic upgrade head``); safe from several hosts at once."""
    from alembic import command

    command.upgrade(config(database_url), "head")
