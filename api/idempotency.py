"""``Idempotency-Key`` (DESIGN.md section 3, rule 4).

The first response is stored in the same transaction as the work it describes, so a key is
either unused or bound to committed work. A transaction-scoped advisory lock on the key makes a
concurrent duplicate answer 409 at once instead of waiting for the first to finish.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.errors import Conflict, Unprocessable
from shared.idempotency import repository as repo
from shared.kit.db import UnitOfWork
from shared.models import Namespace

Outcome = tuple[int, BaseModel, dict[str, str]]


def _fingerprint(method: str, path: str, body: Any) -> bytes:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).digest()


def _lock_id(namespace_id: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{namespace_id}:{key}".encode(), digest_size=8).digest(), "big", signed=True)


def run(db: UnitOfWork, ns: Namespace, key: str | None, method: str, path: str, body: Any,
        work: Callable[[], Outcome]) -> JSONResponse:
    """Do ``work`` once per key; replay its response for a repeated key and body."""
    if key is None:
        status, model, headers = work()
        return JSONResponse(model.model_dump(mode="json"), status_code=status, headers=headers)
    if not repo.try_lock(db, _lock_id(ns.id, key)):
        raise Conflict(f"a request with Idempotency-Key '{key}' is still in flight; retry after it finishes")
    fingerprint = _fingerprint(method, path, body)
    record = repo.get(db, ns.id, key)
    if record is not None:
        if record.fingerprint != fingerprint:
            raise Unprocessable(f"Idempotency-Key '{key}' was already used with another request",
                                loc=["header", "Idempotency-Key"])
        return JSONResponse(record.body, status_code=record.status_code,
                            headers={**record.headers, "Idempotent-Replayed": "true"})
    status, model, headers = work()
    payload = model.model_dump(mode="json")
    repo.insert(db, ns.id, key, fingerprint, status, payload, headers)
    return JSONResponse(payload, status_code=status, headers=headers)
