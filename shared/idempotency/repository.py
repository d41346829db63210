"""All SQL of ``Idempotency-Key`` (DESIGN.md section 3, rule 4)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.kit.connector import execute, fetch_one
from shared.kit.db import UnitOfWork
from shared.models import IdempotencyRecord

TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%(id)s::bigint)"
"""Take the transaction-scoped advisory lock ``id`` without waiting; false when another transaction holds it."""

RECORD = """
    SELECT namespace_id, key, fingerprint, status_code, body, headers, created_at FROM idempotency_keys
    WHERE namespace_id = %(namespace_id)s AND key = %(key)s
"""
"""The response stored for the key ``key`` of the namespace ``namespace_id``."""

INSERT = """
    INSERT INTO idempotency_keys (namespace_id, key, fingerprint, status_code, body, headers)
    VALUES (%(namespace_id)s, %(key)s, %(fingerprint)s, %(status_code)s, CAST(%(body)s AS jsonb), CAST(%(headers)s AS jsonb))
"""
"""Store the response to ``key`` of ``namespace_id``: ``fingerprint``, ``status_code``, ``body`` and ``headers`` (JSON)."""

PURGE_BEFORE = "DELETE FROM idempotency_keys WHERE created_at < %(before)s"
"""Forget the keys used before ``before``."""


def try_lock(db: UnitOfWork, lock_id: int) -> bool:
    """Take the key's transaction-scoped advisory lock, without waiting: False when a request
    with the same key holds it (still in flight)."""
    row = fetch_one(db, TRY_LOCK, {"id": lock_id})
    return row is not None and bool(row[0])


def get(db: UnitOfWork, namespace_id: int, key: str) -> IdempotencyRecord | None:
    row = fetch_one(db, RECORD, {"namespace_id": namespace_id, "key": key})
    return None if row is None else IdempotencyRecord(**row._mapping)


def insert(db: UnitOfWork, namespace_id: int, key: str, fingerprint: bytes, status_code: int, body: dict[str, Any],
           headers: dict[str, str]) -> None:
    """Store the first response, in the transaction of the work it describes."""
    execute(db, INSERT, {"namespace_id": namespace_id, "key": key, "fingerprint": fingerprint, "status_code": status_code,
                         "body": json.dumps(body), "headers": json.dumps(headers)})


def purge_before(db: UnitOfWork, before: datetime) -> int:
    """Forget the keys used before ``before``; returns how many."""
    return execute(db, PURGE_BEFORE, {"before": before})
