from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import DB, AdminDep, NamespaceDep, NamespaceName, PageParams, PrincipalDep
from shared.namespaces import service
from shared.namespaces.schemas import KeyCreate, KeyCreated, KeyRead, NamespaceRead, NamespaceUpsert
from shared.schemas import Page

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])


@router.put("/{namespace}", response_model=NamespaceRead, status_code=200,
            responses={201: {"model": NamespaceRead, "description": "Created"}})
def put_namespace(namespace: NamespaceName, db: DB, _: AdminDep, response: Response,
                  body: NamespaceUpsert | None = None) -> NamespaceRead:
    """Create a namespace (201), or update its description (200). Admin only; idempotent."""
    ns, created = service.put(db, namespace, body or NamespaceUpsert())
    response.status_code = 201 if created else 200
    return ns


@router.get("", response_model=Page[NamespaceRead])
def list_namespaces(db: DB, principal: PrincipalDep, page: PageParams) -> Page[NamespaceRead]:
    """List namespaces: all of them for the admin, its own for a namespace key."""
    return service.list_(db, cursor=page[1], limit=page[0], only_id=principal.namespace_id)


@router.get("/{namespace}", response_model=NamespaceRead)
def get_namespace(ns: NamespaceDep) -> NamespaceRead:
    """Get one namespace."""
    return NamespaceRead.model_validate(ns)


@router.post("/{namespace}/keys", response_model=KeyCreated, status_code=201)
def create_key(ns: NamespaceDep, db: DB, _: AdminDep, body: KeyCreate | None = None) -> KeyCreated:
    """Issue a namespace key. Its secret is in this response only; Engram keeps a hash. Admin only."""
    return service.create_key(db, ns, body or KeyCreate())


@router.get("/{namespace}/keys", response_model=Page[KeyRead])
def list_keys(ns: NamespaceDep, db: DB, _: AdminDep, page: PageParams) -> Page[KeyRead]:
    """List a namespace's keys (without secrets). Admin only."""
    return service.list_keys(db, ns, cursor=page[1], limit=page[0])


@router.delete("/{namespace}/keys/{key_id}", status_code=204)
def delete_key(ns: NamespaceDep, key_id: str, db: DB, _: AdminDep) -> Response:
    """Revoke a namespace key at once. Admin only."""
    service.delete_key(db, ns, key_id)
    return Response(status_code=204)
