"""Webhook endpoints of a namespace, as the API manages them, and their deliveries."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from shared.config import Settings
from shared.errors import Unprocessable, absent
from shared.kit.db import UnitOfWork
from shared.models import Namespace, Webhook, WebhookDelivery
from shared.models.states import DELIVERY_OPEN, DeliveryStatus
from shared.schemas import Page, page_of
from shared.webhooks import guard
from shared.webhooks import repository as repo
from shared.webhooks.schemas import AttemptRead, DeliveryRead, Event, WebhookCreated, WebhookPut, WebhookRead
from shared.webhooks.secrets import new_secret, seal


def put(db: UnitOfWork, settings: Settings, ns: Namespace, name: str, body: WebhookPut) -> WebhookRead | WebhookCreated:
    """Create the endpoint (the answer then carries its secret, this once) or update it."""
    try:
        guard.resolve(body.url, allow_private=settings.webhooks_reach_private_networks)
    except guard.Refused as exc:
        raise Unprocessable(str(exc), loc=["body", "url"]) from None
    secret = new_secret()
    hook, created = repo.upsert(db, ns.id, name, body.url, [e.value for e in body.events], body.description,
                                seal(settings, secret))
    read = WebhookRead.model_validate(hook)
    return WebhookCreated(**read.model_dump(), secret=secret) if created else read


# Every resource's service reads one (its own 404: errors.absent), lists a page (schemas.page_of) and
# deletes (agents, namespaces' keys, webhooks): alike in shape, each over its own repository.
def get(db: UnitOfWork, ns: Namespace, name: str) -> Webhook:
    hook = repo.get(db, ns.id, name)
    if hook is None:
        raise absent("webhook", name, ns.name)
    return hook


def list_(db: UnitOfWork, ns: Namespace, *, cursor: str | None, limit: int) -> Page[WebhookRead]:
    return page_of(lambda after, n: repo.list_after(db, ns.id, after, n), cursor, str, limit,
                   item=WebhookRead.model_validate, position=lambda h: h.name)


def delete(db: UnitOfWork, ns: Namespace, name: str) -> None:
    """Delete the endpoint and its deliveries (those not yet sent are dropped)."""
    if not repo.delete_(db, ns.id, name):
        raise absent("webhook", name, ns.name)


def deliveries(db: UnitOfWork, ns: Namespace, name: str, *, cursor: str | None, limit: int) -> Page[DeliveryRead]:
    """The endpoint's deliveries, newest first, each with its attempts."""
    hook = get(db, ns, name)
    page = page_of(lambda before, n: repo.deliveries_before(db, hook.id, _position(before), n), cursor, str, limit,
                   item=lambda d: d, position=lambda d: f"{d.created_at.isoformat()}|{d.id}")
    tries = defaultdict(list)
    for a in repo.attempts_of(db, [d.id for d in page.items]):
        tries[a.delivery_id].append(AttemptRead.model_validate(a))
    return Page[DeliveryRead](items=[_read(d, tries[d.id]) for d in page.items], next_cursor=page.next_cursor)


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        at, delivery_id = cursor.split("|", 1)
        return datetime.fromisoformat(at), delivery_id
    except ValueError:
        raise Unprocessable("is not a cursor returned by this list", loc=["query", "cursor"]) from None


def _read(d: WebhookDelivery, attempts: list[AttemptRead]) -> DeliveryRead:
    open_ = d.status in DELIVERY_OPEN
    return DeliveryRead(id=d.id, event=Event(d.event), job_id=d.job_id, status=DeliveryStatus(d.status),
                        next_attempt_at=d.next_attempt_at if open_ else None, created_at=d.created_at,
                        finished_at=d.finished_at, attempts=attempts)
