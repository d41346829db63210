"""Typed SQLAlchemy 2 models. The Alembic migrations in ``shared/migrations/`` create these tables."""

from shared.models.agent import Agent, Memory
from shared.models.base import Base
from shared.models.job import IdempotencyRecord, Job
from shared.models.namespace import ApiKey, Namespace
from shared.models.session import ActivitySession, Insight, Participant, Turn
from shared.models.webhook import Webhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "ActivitySession",
    "Agent",
    "ApiKey",
    "Base",
    "IdempotencyRecord",
    "Insight",
    "Job",
    "Memory",
    "Namespace",
    "Participant",
    "Turn",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
]
