from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True), int: BigInteger}


def created_at_column() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def columns(model: type[Base], alias: str | None = None, *, leave_out: tuple[str, ...] = ()) -> str:
    """A model's columns as a select list, each named as the model's attribute (``metadata AS
    metadata_``), so that ``Model(**row._mapping)`` reads a row: derived from the model, which the
    migrations' check keeps equal to the table. ``alias`` qualifies each column; ``leave_out``
    names attributes not read (e.g. a memory's index columns)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + c.name + ("" if key == c.name else f" AS {key}")
                     for key, c in model.__mapper__.columns.items() if key not in leave_out)


def fields(model: type[Base]) -> tuple[str, ...]:
    """The attribute names of a model's columns, in the order of ``columns``."""
    return tuple(model.__mapper__.columns.keys())
