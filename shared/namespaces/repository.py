from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.db import rowcount
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
