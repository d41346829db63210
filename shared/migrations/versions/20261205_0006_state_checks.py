"""States are constrained: CHECK constraints on the job kind and status, the webhook delivery
status and the memory kind

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

The values are those of the enums of ``shared/models/states.py`` (JobKind, JobStatus,
DeliveryStatus, MemoryKind) as of this revision, written out here so that the migration keeps
meaning what it meant when a later revision changes an enum (that revision then replaces the
constraint). Each constraint is added NOT VALID (a brief lock, no scan), then validated, which
scans the table without blocking its writers.
"""
from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column, allowed values); the constraint is named as the models' naming convention names it.
CHECKS = [
    ("jobs", "kind", ("integrate", "truncate")),
    ("jobs", "status", ("queued", "running", "succeeded", "failed", "cancelled")),
    ("webhook_deliveries", "status", ("pending", "sending", "succeeded", "failed")),
    ("memories", "kind", ("observation", "reflection")),
]


def upgrade() -> None:
    for table, column, values in CHECKS:
        allowed = ", ".join(f"'{v}'" for v in values)
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_{column} CHECK ({column} IN ({allowed})) NOT VALID")
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT ck_{table}_{column}")


def downgrade() -> None:
    for table, column, _ in reversed(CHECKS):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_{column}")
