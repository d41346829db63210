"""All SQL on namespaces and their keys, and the namespace wall."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.kit.db import rowcount
from shared.models import ApiKey, Namespace


def upsert(db: Session, name: str, description: str) -> tuple[Namespace, bool]:
    """Create the namespace or update its description; True when it was created."""
    row = db.execute(
        insert(Namespace)
        .values(name=name, description=description)
        .on_conflict_do_nothing(index_elements=[Namespace.name])
        .returning(Namespace.id)
    ).scalar_one_or_none()
    ns = db.execute(select(Namespace).where(Namespace.name == name)).scalar_one()
    if row is None and ns.description != description:
        ns.description = description
    return ns, row is not None


def get_by_name(db: Session, name: str) -> Namespace | None:
    return db.execute(select(Namespace).where(Namespace.name == name)).scalar_one_or_none()


def list_after(db: Session, after: str | None, limit: int, only_id: int | None) -> list[Namespace]:
    q = select(Namespace).order_by(Namespace.name).limit(limit)
    if after is not None:
        q = q.where(Namespace.name > after)
    if only_id is not None:
        q = q.where(Namespace.id == only_id)
    return list(db.execute(q).scalars())


def add_key(db: Session, key: ApiKey) -> None:
    db.add(key)
    db.flush()


def keys_after(db: Session, namespace_id: int, after: str | None, limit: int) -> list[ApiKey]:
    q = select(ApiKey).where(ApiKey.namespace_id == namespace_id).order_by(ApiKey.id).limit(limit)
    if after is not None:
        q = q.where(ApiKey.id > after)
    return list(db.execute(q).scalars())


def delete_key(db: Session, namespace_id: int, key_id: str) -> bool:
    res = db.execute(delete(ApiKey).where(ApiKey.namespace_id == namespace_id, ApiKey.id == key_id))
    return rowcount(res) > 0


def namespace_of_secret_hash(db: Session, secret_hash: str) -> int | None:
    return db.execute(select(ApiKey.namespace_id).where(ApiKey.secret_hash == secret_hash)).scalar_one_or_none()


# --- the caller and the namespace wall ---------------------------------------------------------
# These are written in psycopg's ``%(name)s`` style: the API's asynchronous hot paths (shared.kit.connector)
# and the synchronous ones (``exec_driver_sql``) run the same text.

CALLER = """SELECT %(key)s::text IS NULL AS admin,
                   (SELECT k.namespace_id FROM api_keys k WHERE k.secret_hash = %(key)s) AS key_namespace"""
"""The caller of a request as an SQL row: ``%(key)s`` is the SHA-256 of its namespace key, or NULL
when it holds the admin key (or the API runs in open mode). ``key_namespace`` is NULL for an
unknown or revoked key."""


def known(caller: str) -> str:
    """SQL condition: the caller's key is the admin key or a namespace key that still exists."""
    return f"({caller}.admin OR {caller}.key_namespace IS NOT NULL)"


def reaches(caller: str, namespace: str) -> str:
    """The namespace wall, as an SQL condition on a namespace row: the admin reaches every
    namespace, a namespace key only its own. Every namespace-scoped request applies it; a key
    asking for another namespace gets exactly the 404 of a namespace that does not exist."""
    return f"({caller}.admin OR {namespace}.id = {caller}.key_namespace)"


class Reached(NamedTuple):
    known: bool  # False: unknown or revoked key (401)
    namespace: Namespace | None  # None: no such namespace, or not this key's (404)


_RESOLVE = f"""
    WITH caller AS ({CALLER})
    SELECT {known("caller")}, n.id, n.name, n.description, n.created_at
    FROM caller LEFT JOIN namespaces n ON n.name = %(namespace)s AND {reaches("caller", "n")}
"""


def resolve(db: Session, name: str, key_hash: str | None) -> Reached:
    """Authenticate the caller and find the namespace it asks for, in one round trip."""
    row = db.connection().exec_driver_sql(_RESOLVE, {"key": key_hash, "namespace": name}).one()
    if row[1] is None:
        return Reached(bool(row[0]), None)
    created_at: datetime = row[4]
    return Reached(True, Namespace(id=row[1], name=row[2], description=row[3], created_at=created_at))
