"""The states the tables keep, as enums: one definition each, which the models constrain (CHECK
constraints of migration 0006), the statements write and compare, and the schemas show."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


def sql_list(values: Iterable[StrEnum]) -> str:
    """The values as an SQL list, ``('a','b')``, for statements, partial indexes and CHECKs."""
    return "(" + ",".join(f"'{v.value}'" for v in values) + ")"


class JobKind(StrEnum):
    """The long operations (DESIGN.md section 2)."""

    INTEGRATE = "integrate"
    TRUNCATE = "truncate"


class JobStatus(StrEnum):
    """The states of a job (DESIGN.md section 3). ``queued -> running -> succeeded | failed |
    cancelled``; a running job whose worker was lost, or that failed in a retryable way, goes back
    to ``queued`` within its attempt budget. A queued job may also be cancelled directly."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


# Unfinished jobs hold their session's queue; finished ones are kept for reading, then purged.
OPEN = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# The same, as the SQL list that statements and the partial index of open jobs use.
OPEN_SQL = sql_list(OPEN)


class DeliveryStatus(StrEnum):
    """The states of a webhook delivery: ``pending -> sending -> succeeded``, or back to
    ``pending`` for another try, or ``failed`` once the retry budget is used up."""

    PENDING = "pending"  # waiting for its next try
    SENDING = "sending"  # a worker is sending it
    SUCCEEDED = "succeeded"  # a 2xx answered
    FAILED = "failed"  # the retry budget ran out


# Deliveries still to send (the partial index of due deliveries).
DELIVERY_OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class MemoryKind(StrEnum):
    """An observation is a turn the agent saw; a reflection is an insight of the integrator."""

    OBSERVATION = "observation"
    REFLECTION = "reflection"
