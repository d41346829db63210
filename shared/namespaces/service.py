"""Namespaces (tenants) and their keys."""

from __future__ import annotations

import hashlib
import secrets

from shared.errors import absent
from shared.kit.db import UnitOfWork
from shared.models import ApiKey, Namespace
from shared.namespaces import repository as repo
from shared.namespaces.schemas import KeyCreate, KeyCreated, KeyRead, NamespaceRead, NamespaceUpsert
from shared.schemas import Page, page_of

KEY_PREFIX = "eng_"


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def put(db: UnitOfWork, name: str, body: NamespaceUpsert) -> tuple[NamespaceRead, bool]:
    ns, created = repo.upsert(db, name, body.description)
    return NamespaceRead.model_validate(ns), created


def get(db: UnitOfWork, name: str) -> Namespace:
    ns = repo.get_by_name(db, name)
    if ns is None:
        raise absent("namespace", name)
    return ns


def list_(db: UnitOfWork, *, cursor: str | None, limit: int, only_id: int | None) -> Page[NamespaceRead]:
    return page_of(lambda after, n: repo.list_after(db, after, n, only_id), cursor, str, limit,
                   item=NamespaceRead.model_validate, position=lambda r: r.name)


def create_key(db: UnitOfWork, ns: Namespace, body: KeyCreate) -> KeyCreated:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id="key_" + secrets.token_hex(8), namespace_id=ns.id, secret_hash=hash_secret(secret),
                 description=body.description)
    stored = repo.add_key(db, key)
    return KeyCreated(id=stored.id, description=stored.description, created_at=stored.created_at, secret=secret)


def list_keys(db: UnitOfWork, ns: Namespace, *, cursor: str | None, limit: int) -> Page[KeyRead]:
    return page_of(lambda after, n: repo.keys_after(db, ns.id, after, n), cursor, str, limit,
                   item=KeyRead.model_validate, position=lambda r: r.id)


def delete_key(db: UnitOfWork, ns: Namespace, key_id: str) -> None:
    if not repo.delete_key(db, ns.id, key_id):
        raise absent("key", key_id, ns.name)


def namespace_of_key(db: UnitOfWork, key_hash: str) -> int | None:
    """The namespace of a namespace key (by its hash), None when it is unknown or revoked."""
    return repo.namespace_of_secret_hash(db, key_hash)
