"""Python client of the Engram API (httpx, sync and async), used by the `engram` CLI.

    from engram_client import EngramClient

    with EngramClient() as engram:                 # ENGRAM_URL, ENGRAM_API_KEY (or ENGRAM_ADMIN_KEY)
        engram.put_namespace("demo")
        engram.put_agent("demo", "alice", description="a careful planner")
        s = engram.create_session("demo", "kickoff")
        engram.bind("demo", s.name, "alice")
        engram.append_turns("demo", s.name, [{"speaker": "bob", "content": "Ship on Friday."}])
        job = engram.integrate("demo", s.name).wait(timeout=600)   # long-polls the job
        for memory in engram.iter_memories("demo", "alice"):
            print(memory.importance, memory.content)

Errors: ``EngramAPIError`` (``NotFoundError`` 404, ``ConflictError`` 409, ``ValidationError`` 422,
``AuthError`` 401/403) for non-2xx answers, ``EngramConnectionError`` when the server cannot be
reached, ``JobTimeoutError`` when ``wait(timeout=…)`` runs out.

Receiving webhooks: ``verify(headers, body, secret)`` checks a request's Standard Webhooks signature
and returns its payload, or raises ``WebhookVerificationError``.
"""

from typing import TYPE_CHECKING, Any

from engram_client.errors import (
    AuthError,
    ConflictError,
    EngramAPIError,
    EngramConnectionError,
    EngramError,
    JobTimeoutError,
    NotFoundError,
    ValidationError,
    WebhookVerificationError,
)
from engram_client.models import (
    FINISHED,
    Agent,
    AppendResult,
    Context,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Insight,
    Job,
    JobKind,
    JobLinks,
    JobStatus,
    Key,
    KeyCreated,
    Memory,
    MemoryKind,
    Namespace,
    Page,
    Participant,
    ParticipantResult,
    Progress,
    RecalledMemory,
    RecallResult,
    RedactResult,
    Session,
    Turn,
    TurnIn,
    Webhook,
    WebhookCreated,
    WebhookEvent,
    WebhookIn,
)
from engram_client.sync import EngramClient, JobHandle
from engram_client.webhooks import verify

if TYPE_CHECKING:
    from engram_client.aio import AsyncEngramClient, AsyncJobHandle

__all__ = [
    "FINISHED",
    "Agent",
    "AppendResult",
    "AsyncEngramClient",
    "AsyncJobHandle",
    "AuthError",
    "ConflictError",
    "Context",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "EngramAPIError",
    "EngramClient",
    "EngramConnectionError",
    "EngramError",
    "Insight",
    "Job",
    "JobHandle",
    "JobKind",
    "JobLinks",
    "JobStatus",
    "JobTimeoutError",
    "Key",
    "KeyCreated",
    "Memory",
    "MemoryKind",
    "Namespace",
    "NotFoundError",
    "Page",
    "Participant",
    "ParticipantResult",
    "Progress",
    "RecallResult",
    "RecalledMemory",
    "RedactResult",
    "Session",
    "Turn",
    "TurnIn",
    "ValidationError",
    "Webhook",
    "WebhookCreated",
    "WebhookEvent",
    "WebhookIn",
    "WebhookVerificationError",
    "verify",
]


def __getattr__(name: str) -> Any:
    # The async client is loaded when first asked for: it brings asyncio, which sync users
    # (the `engram` command among them) do not need.
    if name in ("AsyncEngramClient", "AsyncJobHandle"):
        from engram_client import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'engram_client' has no attribute {name!r}")
