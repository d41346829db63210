"""All SQL of ``Idempotency-Key`` (DESIGN.md section 3, rule 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared.kit.db import rowcount
from shared.models import IdempotencyRecord


def try_lock(db: Session, lock_id: int) -> bool:
    """Take the key's transaction-scoped advisory lock, without waiting: False when a request
    with the same key holds it (still in flight)."""
    return bool(db.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id}).scalar_one())


def get(db: Session, namespace_id: int, key: str) -> IdempotencyRecord | None:
    return db.execute(
        select(IdempotencyRecord).where(IdempotencyRecord.namespace_id == namespace_id, IdempotencyRecord.key == key)
    ).scalar_one_or_none()


def insert(db: Session, namespace_id: int, key: str, fingerprint: bytes, status_code: int, body: dict[str, Any],
           headers: dict[str, str]) -> None:
    """Store the first response, in the transaction of the work it describes."""
    db.add(IdempotencyRecord(namespace_id=namespace_id, key=key, fingerprint=fingerprint, status_code=status_code,
                             body=body, headers=headers))


def purge_before(db: Session, before: datetime) -> int:
    """Forget the keys used before ``before``; returns how many."""
    return rowcount(db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before)))
