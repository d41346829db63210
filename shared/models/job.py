from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Identity, Index, Integer, LargeBinary, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column
from shared.models.states import OPEN_SQL, JobKind, JobStatus, sql_list


class Job(Base):
    """A long operation. This row, not Celery, is the source of truth about it."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The head of a session's queue, and the reconciler's scans, use these.
        Index("ix_jobs_session_open", "session_id", "seq", postgresql_where=text(f"status IN {OPEN_SQL}")),
        Index("ix_jobs_namespace_seq", "namespace_id", "seq"),
        Index("ix_jobs_finished_at", "finished_at", postgresql_where=text("finished_at IS NOT NULL")),
        CheckConstraint(f"kind IN {sql_list(JobKind)}", name="kind"),
        CheckConstraint(f"status IN {sql_list(JobStatus)}", name="status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Creation order; jobs of a session run in this order.
    seq: Mapped[int] = mapped_column(Identity(), unique=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    session_name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))  # a JobKind
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)  # a JobStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # the fencing token of a run
    progress_completed: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]  # last Celery message sent for it
    # Messages the reconciler re-sent while the job stayed queued: each doubles the wait before
    # the next one, so a long backlog behind busy workers is not flooded with duplicates.
    redispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    # Taken when a run starts: the session generation it is fenced on, and the last seq it sees.
    run_generation: Mapped[int | None]
    snapshot_seq: Mapped[int | None]


class IdempotencyRecord(Base):
    """The first response to an ``Idempotency-Key``, committed with the work it describes."""

    __tablename__ = "idempotency_keys"

    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    body: Mapped[dict[str, Any]]
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at_column()
