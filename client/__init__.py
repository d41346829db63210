"""Python client of the Engram API (httpx, sync and async), used by the `engram` CLI.

    from client import EngramClient

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
"""

from client.aio import AsyncEngramClient, AsyncJobHandle
from client.models import (
    FINISHED, Agent, AppendResult, AuthError, ConflictError, EngramAPIError, EngramConnectionError, EngramError,
    Insight, Job, JobTimeoutError, Key, KeyCreated, Memory, Namespace, NotFoundError, Page, Participant,
    ParticipantResult, Progress, Session, Turn, TurnIn, ValidationError,
)
from client.sync import EngramClient, JobHandle

__all__ = [
    "FINISHED", "Agent", "AppendResult", "AsyncEngramClient", "AsyncJobHandle", "AuthError", "ConflictError",
    "EngramAPIError", "EngramClient", "EngramConnectionError", "EngramError", "Insight", "Job", "JobHandle",
    "JobTimeoutError", "Key", "KeyCreated", "Memory", "Namespace", "NotFoundError", "Page", "Participant",
    "ParticipantResult", "Progress", "Session", "Turn", "TurnIn", "ValidationError",
]
