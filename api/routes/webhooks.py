from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import DB, NamespaceDep, PageParams, SettingsDep
from shared.schemas import SLUG_PATTERN, Page
from shared.webhooks import service
from shared.webhooks.schemas import DeliveryRead, WebhookCreated, WebhookPut, WebhookRead

router = APIRouter(prefix="/v1/namespaces/{namespace}/webhooks", tags=["webhooks"])

WebhookName = Annotated[str, Path(pattern=SLUG_PATTERN, description="Webhook endpoint name (slug).")]


@router.put("/{webhook}", response_model=WebhookRead | WebhookCreated, responses={
    201: {"model": WebhookCreated, "description": "Created: the answer carries the signing `secret`, this once."},
    200: {"model": WebhookRead, "description": "Updated (URL, events, description); the secret is unchanged."}})
def put_webhook(ns: NamespaceDep, webhook: WebhookName, body: WebhookPut, db: DB, settings: SettingsDep,
                response: Response) -> WebhookRead | WebhookCreated:
    """Register an endpoint for the namespace's job events (201, with its signing secret), or update one (200).

    Each event is POSTed as JSON `{type, timestamp, data: <the job>}`, signed the Standard Webhooks way
    (`webhook-id`, `webhook-timestamp`, `webhook-signature`), and retried with exponential backoff until a
    2xx or the retry budget runs out. A URL that resolves to a private, loopback or link-local address is
    refused (422), unless the server allows private networks."""
    read = service.put(db, settings, ns, webhook, body)
    response.status_code = 201 if isinstance(read, WebhookCreated) else 200
    return read


@router.get("", response_model=Page[WebhookRead])
def list_webhooks(ns: NamespaceDep, db: DB, page: PageParams) -> Page[WebhookRead]:
    """List the namespace's webhook endpoints by name (without secrets)."""
    return service.list_(db, ns, cursor=page[1], limit=page[0])


@router.get("/{webhook}", response_model=WebhookRead)
def get_webhook(ns: NamespaceDep, webhook: WebhookName, db: DB) -> WebhookRead:
    """Get one webhook endpoint (without its secret)."""
    return WebhookRead.model_validate(service.get(db, ns, webhook))


@router.delete("/{webhook}", status_code=204)
def delete_webhook(ns: NamespaceDep, webhook: WebhookName, db: DB) -> Response:
    """Delete an endpoint; its deliveries not yet sent are dropped."""
    service.delete(db, ns, webhook)
    return Response(status_code=204)


@router.get("/{webhook}/deliveries", response_model=Page[DeliveryRead])
def list_deliveries(ns: NamespaceDep, webhook: WebhookName, db: DB, page: PageParams) -> Page[DeliveryRead]:
    """The endpoint's deliveries, newest first: status, next try, and each attempt with its answer."""
    return service.deliveries(db, ns, webhook, cursor=page[1], limit=page[0])
