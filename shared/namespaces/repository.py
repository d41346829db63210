"""All SQL on namespaces and their keys, and the namespace wall."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shared.kit.connector import execute, fetch_all, fetch_one
from shared.kit.db import UnitOfWork
from shared.models import ApiKey, Namespace
from shared.models.base import columns

# The columns of a namespace and of a key, as their models name them (``Namespace(**row._mapping)``).
NAMESPACE_COLUMNS = columns(Namespace)
KEY_COLUMNS = columns(ApiKey)

INSERT_NAMESPACE = f"""
    INSERT INTO namespaces (name, description) VALUES (%(name)s, %(description)s)
    ON CONFLICT (name) DO NOTHING RETURNING {NAMESPACE_COLUMNS}
"""
"""Create the namespace ``name`` with its ``description``; no row when the name is taken."""

SET_DESCRIPTION = f"UPDATE namespaces SET description = %(description)s WHERE name = %(name)s RETURNING {NAMESPACE_COLUMNS}"
"""Give the namespace ``name`` the ``description``; the namespace."""

NAMESPACE_BY_NAME = f"SELECT {NAMESPACE_COLUMNS} FROM namespaces WHERE name = %(name)s"
"""The namespace called ``name``."""

NAMESPACES_AFTER = f"""
    SELECT {NAMESPACE_COLUMNS} FROM namespaces
    WHERE (%(after)s::text IS NULL OR name > %(after)s) AND (%(only_id)s::bigint IS NULL OR id = %(only_id)s)
    ORDER BY name LIMIT %(limit)s
"""
"""Up to ``limit`` namespaces by name, after the name ``after`` (NULL: from the first), only ``only_id`` unless NULL."""

INSERT_KEY = f"""
    INSERT INTO api_keys (id, namespace_id, secret_hash, description)
    VALUES (%(id)s, %(namespace_id)s, %(secret_hash)s, %(description)s) RETURNING {KEY_COLUMNS}
"""
"""Store a namespace key: its ``id``, ``namespace_id``, ``secret_hash`` and ``description``."""

KEYS_AFTER = f"""
    SELECT {KEY_COLUMNS} FROM api_keys
    WHERE namespace_id = %(namespace_id)s AND (%(after)s::text IS NULL OR id > %(after)s)
    ORDER BY id LIMIT %(limit)s
"""
"""Up to ``limit`` keys of the namespace ``namespace_id`` by id, after the id ``after`` (NULL: from the first)."""

DELETE_KEY = "DELETE FROM api_keys WHERE namespace_id = %(namespace_id)s AND id = %(id)s"
"""Revoke the key ``id`` of the namespace ``namespace_id``."""

NAMESPACE_OF_SECRET = "SELECT namespace_id FROM api_keys WHERE secret_hash = %(secret_hash)s"
"""The namespace of the key whose secret has the SHA-256 ``secret_hash``."""


def upsert(db: UnitOfWork, name: str, description: str) -> tuple[Namespace, bool]:
    """Create the namespace or update its description; True when it was created."""
    params = {"name": name, "description": description}
    row = fetch_one(db, INSERT_NAMESPACE, params)
    if row is not None:
        return Namespace(**row._mapping), True
    # Another statement, so another snapshot: it sees the row that made the insert do nothing.
    row = fetch_one(db, SET_DESCRIPTION, params)
    assert row is not None  # namespaces are never deleted
    return Namespace(**row._mapping), False


def get_by_name(db: UnitOfWork, name: str) -> Namespace | None:
    row = fetch_one(db, NAMESPACE_BY_NAME, {"name": name})
    return None if row is None else Namespace(**row._mapping)


def list_after(db: UnitOfWork, after: str | None, limit: int, only_id: int | None) -> list[Namespace]:
    rows = fetch_all(db, NAMESPACES_AFTER, {"after": after, "limit": limit, "only_id": only_id})
    return [Namespace(**r._mapping) for r in rows]


def add_key(db: UnitOfWork, key: ApiKey) -> ApiKey:
    """Store the key; the stored key (with its ``created_at``)."""
    row = fetch_one(db, INSERT_KEY, {"id": key.id, "namespace_id": key.namespace_id, "secret_hash": key.secret_hash,
                                     "description": key.description})
    assert row is not None  # INSERT ... RETURNING
    return ApiKey(**row._mapping)


def keys_after(db: UnitOfWork, namespace_id: int, after: str | None, limit: int) -> list[ApiKey]:
    rows = fetch_all(db, KEYS_AFTER, {"namespace_id": namespace_id, "after": after, "limit": limit})
    return [ApiKey(**r._mapping) for r in rows]


def delete_key(db: UnitOfWork, namespace_id: int, key_id: str) -> bool:
    return execute(db, DELETE_KEY, {"namespace_id": namespace_id, "id": key_id}) > 0


def namespace_of_secret_hash(db: UnitOfWork, secret_hash: str) -> int | None:
    row = fetch_one(db, NAMESPACE_OF_SECRET, {"secret_hash": secret_hash})
    return None if row is None else int(row[0])


# --- the caller and the namespace wall ---------------------------------------------------------
# The wall is the SQL function reached_namespace (migration 0007), which every namespace-scoped
# statement applies: here, and in accepting and reading a job (shared.jobs.repository).

class Reached(NamedTuple):
    known: bool  # False: unknown or revoked key (401)
    namespace: Namespace | None  # None: no such namespace, or not this key's (404)


RESOLVE = """
    SELECT w.known, n.id, n.name, n.description, n.created_at
    FROM reached_namespace(%(key)s, %(namespace)s) w LEFT JOIN namespaces n ON n.id = w.id
"""
"""The caller and the namespace it asks for, behind the namespace wall (the SQL function
reached_namespace, migration 0007; params: key, namespace): (key known, the namespace's columns or NULLs)."""


def resolve(db: UnitOfWork, name: str, key_hash: str | None) -> Reached:
    """Authenticate the caller and find the namespace it asks for, in one round trip."""
    found = fetch_one(db, RESOLVE, {"key": key_hash, "namespace": name})
    assert found is not None  # one row: the caller's, left-joined with the namespace
    row = tuple(found)
    if row[1] is None:
        return Reached(bool(row[0]), None)
    created_at: datetime = row[4]
    return Reached(True, Namespace(id=row[1], name=row[2], description=row[3], created_at=created_at))
