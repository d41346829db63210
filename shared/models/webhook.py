"""Webhook endpoints of a namespace, and the outbox of their deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column
from shared.models.states import DELIVERY_OPEN, DeliveryStatus, sql_list


class Webhook(Base):
    """An endpoint that receives a namespace's job events. Its signing secret is stored encrypted
    with ENGRAM_WEBHOOK_SECRETS_KEY, which is not in the database."""

    __tablename__ = "webhooks"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    description: Mapped[str] = mapped_column(default="")
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class WebhookDelivery(Base):
    """One event for one endpoint: written in the transaction that finishes the job (the outbox),
    then sent until a 2xx or the retry budget runs out. ``attempts`` is the fencing token of a send."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text(f"status IN {sql_list(DELIVERY_OPEN)}")),
        CheckConstraint(f"status IN {sql_list(DeliveryStatus)}", name="status"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header: msg_<uuid>
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default=DeliveryStatus.PENDING.value)  # a DeliveryStatus
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = created_at_column()
    dispatched_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One try at sending a delivery: when, and what the receiver answered (or what failed)."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(Text)
