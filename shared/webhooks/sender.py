"""One try at sending a delivery: what the ``webhooks.deliver`` task runs.

The claim commits before the request (so the request is never made inside a transaction), the
outcome and its attempt are recorded after it, fenced by the claim's token. A 2xx ends the
delivery; anything else waits ``ENGRAM_WEBHOOK_RETRY_BASE_SECONDS`` doubled per try (up to an
hour) until ``ENGRAM_WEBHOOK_MAX_ATTEMPTS`` tries, then the delivery is failed. The reconciler
sends what is due again, and puts back the sends of lost workers: at least once, never lost.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import httpx

from shared.config import Settings
from shared.jobs.service import JobFields, to_read
from shared.kit.db import unit_of_work
from shared.kit.metrics import WEBHOOK_DELIVERIES, WEBHOOK_SECONDS
from shared.models.states import DeliveryStatus
from shared.webhooks import guard
from shared.webhooks import repository as repo
from shared.webhooks.secrets import signed_headers, unseal

log = logging.getLogger("engram.webhooks")
MAX_RETRY_SECONDS = 3600.0
USER_AGENT = "Engram-Webhooks/0.1"


class SendOutcome(StrEnum):
    """What one try at a delivery came to (the worker's logs and metrics)."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"  # the retry budget is used up
    SUPERSEDED = "superseded"  # its lease expired meanwhile: another send owns the delivery
    NOT_DUE = "not_due"  # a duplicate message, or not yet time to retry


def retry_delay(settings: Settings, tries: int) -> float:
    """Seconds before the next try after ``tries`` failed ones: the base, doubled per try, capped."""
    return min(settings.webhook_retry_base_seconds * 2.0 ** (tries - 1), MAX_RETRY_SECONDS)


def payload(event: str, job: JobFields | None, job_id: str, namespace: str, at: datetime) -> str:
    """The request body: the event type, when it was sent, and the job as `GET …/jobs/{id}` shows it."""
    data = to_read(job, namespace).model_dump(mode="json") if job is not None else {"id": job_id}
    return json.dumps({"type": event, "timestamp": at.isoformat(), "data": data}, separators=(",", ":"))


def deliver(delivery_id: str, settings: Settings) -> SendOutcome:
    """Try the delivery once, if it is due. The outcome: delivered, retrying, failed (the retry
    budget is used up), superseded (its lease expired meanwhile) or not_due (a duplicate message)."""
    lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + 5)  # the request's time, twice, and a margin
    with unit_of_work(settings) as db:
        send = repo.claim(db, delivery_id, lease, settings.webhook_max_attempts)
        if send is None:
            log.info("webhook delivery %s not due (sent already, not yet time to retry, or deleted)", delivery_id)
            WEBHOOK_DELIVERIES.labels(SendOutcome.NOT_DUE).inc()
            return SendOutcome.NOT_DUE
        job = repo.job(db, send.job_id)
        body = payload(send.event, job, send.job_id, send.namespace, datetime.now(UTC))
        secret = unseal(settings, send.secret_encrypted)
    started, clock = datetime.now(UTC), time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        target = guard.resolve(send.url, allow_private=settings.webhooks_reach_private_networks)
        headers = {**signed_headers(secret, send.id, started, body), "content-type": "application/json",
                   "user-agent": USER_AGENT, "host": target.host}
        # The request goes to the address just checked (no second lookup to rebind); TLS still
        # checks the certificate against the URL's host name.
        extensions = {"sni_hostname": target.host} if target.url.startswith("https:") else {}
        with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client, \
                WEBHOOK_SECONDS.time():
            response = client.post(target.url, content=body, headers=headers, extensions=extensions)
        status_code = response.status_code
        if not response.is_success:
            error = f"the receiver answered {status_code}"
    except guard.Refused as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = int((time.perf_counter() - clock) * 1000)
    last_try = send.token >= settings.webhook_max_attempts
    status = (DeliveryStatus.SUCCEEDED if error is None else DeliveryStatus.FAILED if last_try
              else DeliveryStatus.PENDING)
    with unit_of_work(settings) as db:
        owned = repo.record(db, send, status=status, started_at=started, duration_ms=duration_ms,
                            status_code=status_code, error=error, retry_in=retry_delay(settings, send.token))
    outcome = ((SendOutcome.DELIVERED if error is None else SendOutcome.FAILED if last_try else SendOutcome.RETRYING)
               if owned else SendOutcome.SUPERSEDED)
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    (log.info if error is None else log.warning)("webhook delivery %s of job %s (%s), try %d: %s; %s", send.id,
                                                 send.job_id, send.event, send.token,
                                                 error or f"answered {status_code}", outcome)
    return outcome
