"""All SQL of webhooks: the endpoints, the outbox of deliveries, and a delivery's sends (fenced by
its ``attempts``, as a job's runs are by theirs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared.kit.db import rowcount
from shared.models import Webhook, WebhookAttempt, WebhookDelivery
from shared.models.states import DeliveryStatus

# --- endpoints ---------------------------------------------------------------------------------

_UPSERT = text("""
    INSERT INTO webhooks (namespace_id, name, url, events, description, secret_encrypted)
    VALUES (:namespace_id, :name, :url, :events, :description, :secret)
    ON CONFLICT (namespace_id, name) DO UPDATE
        SET url = excluded.url, events = excluded.events, description = excluded.description, updated_at = now()
    RETURNING id, (xmax = 0) AS created
""")


def upsert(db: Session, namespace_id: int, name: str, url: str, events: list[str], description: str,
           sealed_secret: bytes) -> tuple[Webhook, bool]:
    """Create the endpoint (with this secret) or update it (keeping its secret); True when created."""
    row = db.execute(_UPSERT, {"namespace_id": namespace_id, "name": name, "url": url, "events": events,
                               "description": description, "secret": sealed_secret}).one()
    return db.get_one(Webhook, row[0], populate_existing=True), bool(row[1])


def get(db: Session, namespace_id: int, name: str) -> Webhook | None:
    return db.execute(select(Webhook).where(Webhook.namespace_id == namespace_id, Webhook.name == name)).scalar_one_or_none()


def list_after(db: Session, namespace_id: int, after: str | None, limit: int) -> list[Webhook]:
    q = select(Webhook).where(Webhook.namespace_id == namespace_id).order_by(Webhook.name).limit(limit)
    if after is not None:
        q = q.where(Webhook.name > after)
    return list(db.execute(q).scalars())


def delete_(db: Session, namespace_id: int, name: str) -> bool:
    return rowcount(db.execute(delete(Webhook).where(Webhook.namespace_id == namespace_id, Webhook.name == name))) > 0


def deliveries_before(db: Session, webhook_id: int, before: tuple[datetime, str] | None,
                      limit: int) -> list[WebhookDelivery]:
    """An endpoint's deliveries, newest first, before a position (created_at, id)."""
    q = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
         .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit))
    if before is not None:
        at, delivery_id = before
        q = q.where((WebhookDelivery.created_at < at) | ((WebhookDelivery.created_at == at) & (WebhookDelivery.id < delivery_id)))
    return list(db.execute(q).scalars())


def attempts_of(db: Session, delivery_ids: Sequence[str]) -> list[WebhookAttempt]:
    return list(db.execute(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids))
                           .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)).scalars())


# --- sending -----------------------------------------------------------------------------------


class Send(NamedTuple):
    """What a send needs, read by its claim."""

    id: str
    token: int  # the delivery's attempts after the claim: every write of this send checks it
    event: str
    url: str
    secret_encrypted: bytes
    namespace: str
    job_id: str


_CLAIM = text(f"""
    UPDATE webhook_deliveries d
    SET status = '{DeliveryStatus.SENDING}', attempts = d.attempts + 1, lease_expires_at = now() + make_interval(secs => :lease)
    FROM webhooks w, namespaces n
    WHERE d.id = :id AND d.status = '{DeliveryStatus.PENDING}' AND d.next_attempt_at <= now() AND d.attempts < :max_attempts
      AND w.id = d.webhook_id AND n.id = w.namespace_id
    RETURNING d.id, d.attempts, d.event, w.url, w.secret_encrypted, n.name, d.job_id
""")


def claim(db: Session, delivery_id: str, lease: timedelta, max_attempts: int) -> Send | None:
    """Start a send: pending and due -> sending, attempts + 1 (its token). None when the delivery
    is not due, not pending, or gone with its endpoint."""
    row = db.execute(_CLAIM, {"id": delivery_id, "lease": lease.total_seconds(), "max_attempts": max_attempts}).first()
    return None if row is None else Send(*row)


_RECORD = text(f"""
    WITH sent AS (
        UPDATE webhook_deliveries
        SET status = :status, lease_expires_at = NULL, last_status_code = :status_code, last_error = :error,
            next_attempt_at = CASE WHEN :retry THEN now() + make_interval(secs => :retry_in) ELSE next_attempt_at END,
            dispatched_at = CASE WHEN :retry THEN NULL ELSE dispatched_at END,
            finished_at = CASE WHEN :retry THEN NULL ELSE now() END
        WHERE id = :id AND attempts = :token AND status = '{DeliveryStatus.SENDING}'
        RETURNING id, attempts)
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
    SELECT id, attempts, :started_at, :duration_ms, :status_code, :error FROM sent
    RETURNING attempt
""")


def record(db: Session, send: Send, *, status: DeliveryStatus, started_at: datetime, duration_ms: int, status_code: int | None,
           error: str | None, retry_in: float) -> bool:
    """Record a send's outcome and its attempt, if the send still owns the delivery (its token);
    False when it no longer does (the lease expired and another send took over)."""
    row = db.execute(_RECORD, {"id": send.id, "token": send.token, "status": status.value, "started_at": started_at,
                               "duration_ms": duration_ms, "status_code": status_code, "error": error,
                               "retry_in": retry_in, "retry": status == DeliveryStatus.PENDING}).first()
    return row is not None


# --- the reconciler ----------------------------------------------------------------------------

_REQUEUE_LOST = text(f"""
    UPDATE webhook_deliveries
    SET status = CASE WHEN attempts >= :max_attempts THEN '{DeliveryStatus.FAILED}' ELSE '{DeliveryStatus.PENDING}' END,
        finished_at = CASE WHEN attempts >= :max_attempts THEN now() END,
        last_error = 'the worker sending it was lost', lease_expires_at = NULL, dispatched_at = NULL
    WHERE status = '{DeliveryStatus.SENDING}' AND lease_expires_at < now()
    RETURNING id
""")


def requeue_lost(db: Session, max_attempts: int) -> int:
    """Sends whose worker was lost (lease expired): pending again, or failed when that was the last try."""
    return len(db.execute(_REQUEUE_LOST, {"max_attempts": max_attempts}).all())


_DUE = text(f"""
    UPDATE webhook_deliveries SET dispatched_at = now()
    WHERE id IN (SELECT id FROM webhook_deliveries
                 WHERE status = '{DeliveryStatus.PENDING}' AND next_attempt_at <= now()
                   AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => :resend_after))
                 ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id
""")


def due(db: Session, resend_after: timedelta, limit: int = 1000) -> list[str]:
    """Pending deliveries whose next try is due and that have no recent message: mark them
    dispatched and return their ids, to send after commit."""
    return list(db.execute(_DUE, {"resend_after": resend_after.total_seconds(), "limit": limit}).scalars())
