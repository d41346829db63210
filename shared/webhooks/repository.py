"""All SQL of webhooks: the endpoints, the outbox of deliveries, and a delivery's sends (fenced by
its ``attempts``, as a job's runs are by theirs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from shared.jobs.repository import JobRow
from shared.kit.connector import execute, fetch_all, fetch_one
from shared.kit.db import Record, UnitOfWork
from shared.models import Webhook, WebhookAttempt, WebhookDelivery
from shared.models.base import columns
from shared.models.states import DeliveryStatus

# --- endpoints ---------------------------------------------------------------------------------

# The columns of a Webhook, in the model's names: the reads below return them, for ``Webhook(**row._mapping)``.
WEBHOOK_COLUMNS = columns(Webhook)

UPSERT = f"""
    INSERT INTO webhooks (namespace_id, name, url, events, description, secret_encrypted)
    VALUES (%(namespace_id)s, %(name)s, %(url)s, CAST(%(events)s AS text[]), %(description)s, %(secret)s)
    ON CONFLICT (namespace_id, name) DO UPDATE
        SET url = excluded.url, events = excluded.events, description = excluded.description, updated_at = now()
    RETURNING {WEBHOOK_COLUMNS}, (xmax = 0) AS created
"""
"""Create or update an endpoint (a new one's secret): namespace_id, name, url, events, description, secret; its row, created."""

READ = f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE namespace_id = %(namespace_id)s AND name = %(name)s"
"""An endpoint by its name in the namespace: namespace_id, name."""

LIST_AFTER = f"""
    SELECT {WEBHOOK_COLUMNS} FROM webhooks
    WHERE namespace_id = %(namespace_id)s AND (CAST(%(after)s AS text) IS NULL OR name > CAST(%(after)s AS text))
    ORDER BY name LIMIT %(limit)s
"""
"""A namespace's endpoints by name, after a name (none: from the first): namespace_id, after (or None), limit."""

DELETE = "DELETE FROM webhooks WHERE namespace_id = %(namespace_id)s AND name = %(name)s"
"""Delete an endpoint, and with it its deliveries and their attempts (cascade): namespace_id, name."""

# The columns of a WebhookDelivery, in the model's names.
DELIVERY_COLUMNS = columns(WebhookDelivery)

DELIVERIES_BEFORE = f"""
    SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
    WHERE webhook_id = %(webhook_id)s
      AND (CAST(%(at)s AS timestamptz) IS NULL
           OR (created_at, id) < (CAST(%(at)s AS timestamptz), CAST(%(before_id)s AS text)))
    ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
"""An endpoint's deliveries, newest first: webhook_id, limit, before the position at, before_id (created_at, id; or NULLs)."""

ATTEMPTS_OF = """
    SELECT delivery_id, attempt, started_at, duration_ms, status_code, error FROM webhook_attempts
    WHERE delivery_id = ANY(CAST(%(ids)s AS text[]))
    ORDER BY delivery_id, attempt
"""
"""The attempts of these deliveries, by delivery then in order: ids (list of delivery ids)."""


def _webhook(row: Record) -> Webhook:
    """The endpoint of a row of its columns (a plain record, never added to a session)."""
    return Webhook(**{k: v for k, v in row._mapping.items() if k != "created"})


def upsert(db: UnitOfWork, namespace_id: int, name: str, url: str, events: list[str], description: str,
           sealed_secret: bytes) -> tuple[Webhook, bool]:
    """Create the endpoint (with this secret) or update it (keeping its secret); True when created."""
    row = fetch_one(db, UPSERT, {"namespace_id": namespace_id, "name": name, "url": url, "events": events,
                                 "description": description, "secret": sealed_secret})
    assert row is not None  # an upsert always returns its row
    return _webhook(row), bool(row.created)


def get(db: UnitOfWork, namespace_id: int, name: str) -> Webhook | None:
    row = fetch_one(db, READ, {"namespace_id": namespace_id, "name": name})
    return None if row is None else _webhook(row)


def list_after(db: UnitOfWork, namespace_id: int, after: str | None, limit: int) -> list[Webhook]:
    return [_webhook(r) for r in fetch_all(db, LIST_AFTER, {"namespace_id": namespace_id, "after": after, "limit": limit})]


def delete_(db: UnitOfWork, namespace_id: int, name: str) -> bool:
    return execute(db, DELETE, {"namespace_id": namespace_id, "name": name}) > 0


def deliveries_before(db: UnitOfWork, webhook_id: int, before: tuple[datetime, str] | None,
                      limit: int) -> list[WebhookDelivery]:
    """An endpoint's deliveries, newest first, before a position (created_at, id)."""
    at, before_id = before if before is not None else (None, None)
    rows = fetch_all(db, DELIVERIES_BEFORE, {"webhook_id": webhook_id, "at": at, "before_id": before_id, "limit": limit})
    return [WebhookDelivery(**r._mapping) for r in rows]


def attempts_of(db: UnitOfWork, delivery_ids: Sequence[str]) -> list[WebhookAttempt]:
    return [WebhookAttempt(**r._mapping) for r in fetch_all(db, ATTEMPTS_OF, {"ids": list(delivery_ids)})]


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


CLAIM = f"""
    UPDATE webhook_deliveries d
    SET status = '{DeliveryStatus.SENDING}', attempts = d.attempts + 1,
        lease_expires_at = now() + make_interval(secs => %(lease)s)
    FROM webhooks w, namespaces n
    WHERE d.id = %(id)s AND d.status = '{DeliveryStatus.PENDING}' AND d.next_attempt_at <= now() AND d.attempts < %(max_attempts)s
      AND w.id = d.webhook_id AND n.id = w.namespace_id
    RETURNING d.id, d.attempts AS token, d.event, w.url, w.secret_encrypted, n.name AS namespace, d.job_id
"""
"""Claim a pending, due delivery for a send (attempts + 1, leased): id, lease (seconds), max_attempts; a Send's columns."""

_JOB_READ = ", ".join(JobRow._fields)

JOB = f"SELECT {_JOB_READ} FROM jobs WHERE id = %(id)s"
"""The job a delivery tells of, as a job read shows it (JobRow): id (the job's)."""


def claim(db: UnitOfWork, delivery_id: str, lease: timedelta, max_attempts: int) -> Send | None:
    """Start a send: pending and due -> sending, attempts + 1 (its token). None when the delivery
    is not due, not pending, or gone with its endpoint."""
    row = fetch_one(db, CLAIM, {"id": delivery_id, "lease": lease.total_seconds(), "max_attempts": max_attempts})
    return None if row is None else Send(**row._mapping)


def job(db: UnitOfWork, job_id: str) -> JobRow | None:
    """The job a delivery tells of (None: deleted since), for the payload of its send."""
    row = fetch_one(db, JOB, {"id": job_id})
    return None if row is None else JobRow(**row._mapping)


RECORD = f"""
    WITH sent AS (
        UPDATE webhook_deliveries
        SET status = %(status)s, lease_expires_at = NULL, last_status_code = %(status_code)s, last_error = %(error)s,
            next_attempt_at = CASE WHEN %(retry)s THEN now() + make_interval(secs => %(retry_in)s) ELSE next_attempt_at END,
            dispatched_at = CASE WHEN %(retry)s THEN NULL ELSE dispatched_at END,
            finished_at = CASE WHEN %(retry)s THEN NULL ELSE now() END
        WHERE id = %(id)s AND attempts = %(token)s AND status = '{DeliveryStatus.SENDING}'
        RETURNING id, attempts)
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
    SELECT id, attempts, %(started_at)s, %(duration_ms)s, %(status_code)s, %(error)s FROM sent
    RETURNING attempt
"""
"""Record a send its token still owns: id, token, status, status_code, error, retry, retry_in, started_at, duration_ms."""


def record(db: UnitOfWork, send: Send, *, status: DeliveryStatus, started_at: datetime, duration_ms: int, status_code: int | None,
           error: str | None, retry_in: float) -> bool:
    """Record a send's outcome and its attempt, if the send still owns the delivery (its token);
    False when it no longer does (the lease expired and another send took over)."""
    row = fetch_one(db, RECORD, {"id": send.id, "token": send.token, "status": status.value, "started_at": started_at,
                                "duration_ms": duration_ms, "status_code": status_code, "error": error,
                                "retry_in": retry_in, "retry": status == DeliveryStatus.PENDING})
    return row is not None


# --- the reconciler ----------------------------------------------------------------------------

REQUEUE_LOST = f"""
    UPDATE webhook_deliveries
    SET status = CASE WHEN attempts >= %(max_attempts)s THEN '{DeliveryStatus.FAILED}' ELSE '{DeliveryStatus.PENDING}' END,
        finished_at = CASE WHEN attempts >= %(max_attempts)s THEN now() END,
        last_error = 'the worker sending it was lost', lease_expires_at = NULL, dispatched_at = NULL
    WHERE status = '{DeliveryStatus.SENDING}' AND lease_expires_at < now()
    RETURNING id
"""
"""Sends whose lease expired (lost worker): pending again, or failed past max_attempts; their ids."""


def requeue_lost(db: UnitOfWork, max_attempts: int) -> int:
    """Sends whose worker was lost (lease expired): pending again, or failed when that was the last try."""
    return len(fetch_all(db, REQUEUE_LOST, {"max_attempts": max_attempts}))


DUE = f"""
    UPDATE webhook_deliveries SET dispatched_at = now()
    WHERE id IN (SELECT id FROM webhook_deliveries
                 WHERE status = '{DeliveryStatus.PENDING}' AND next_attempt_at <= now()
                   AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => %(resend_after)s))
                 ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING id
"""
"""Mark dispatched (up to limit) due deliveries with no message in the last resend_after seconds; their ids."""


def due(db: UnitOfWork, resend_after: timedelta, limit: int = 1000) -> list[str]:
    """Pending deliveries whose next try is due and that have no recent message: mark them
    dispatched and return their ids, to send after commit."""
    return [r[0] for r in fetch_all(db, DUE, {"resend_after": resend_after.total_seconds(), "limit": limit})]
