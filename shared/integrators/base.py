"""The integrator interface: a participant's new turns in, insights out.

An integrator is pure with respect to Engram's storage: it never touches the database. The job
runner gives it the turns and stores what it returns, so every integrator gets fencing,
near-duplicate detection and transactions for free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ChatTurn:
    seq: int
    speaker: str
    content: str


@dataclass(frozen=True, slots=True)
class InsightDraft:
    content: str
    importance: int  # 1..10
    evidence: list[int] = field(default_factory=list)  # seqs of the turns it rests on


@dataclass(frozen=True, slots=True)
class Reflection:
    """What one integrator call is asked to reflect on."""

    agent: str
    agent_description: str
    turns: Sequence[ChatTurn]
    #: Turns of the session the participant saw and integrated before these (the latest
    #: ENGRAM_INTEGRATION_CONTEXT_TURNS, oldest first): context. An insight may cite them too.
    earlier: Sequence[ChatTurn] = ()


class IntegratorError(Exception):
    """The integrator could not produce insights. ``retryable`` says if a later run may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Integrator(Protocol):
    name: str

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        """Insights for the reflection's turns; evidence only cites seqs of its turns and earlier turns."""
        ...
