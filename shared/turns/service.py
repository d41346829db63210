"""Turns: atomic batch append and paginated reads."""

from __future__ import annotations

from shared.agents import repository as agents_repo
from shared.errors import Conflict, NotFound, Unprocessable
from shared.kit.db import UnitOfWork
from shared.models import Namespace, Turn
from shared.schemas import Page, page_of
from shared.sessions import repository as sessions_repo
from shared.sessions import service as sessions
from shared.turns import repository as repo
from shared.turns.schemas import AppendResult, RedactResult, TurnBatch, TurnRead


def to_read(t: Turn) -> TurnRead:
    return TurnRead(seq=t.seq, speaker=t.speaker, content=t.content, visible_to=t.visible_to, metadata=t.metadata_,
                    occurred_at=t.occurred_at, created_at=t.created_at, redacted_at=t.redacted_at)


def append(db: UnitOfWork, ns: Namespace, name: str, batch: TurnBatch, *, max_turns: int, max_chars: int) -> AppendResult:
    if len(batch.turns) > max_turns:
        raise Unprocessable(f"a batch holds at most {max_turns} turns, this one has {len(batch.turns)}", loc=["body", "turns"])
    for i, t in enumerate(batch.turns):
        if len(t.content) > max_chars:
            raise Unprocessable(f"is longer than {max_chars} characters", loc=["body", "turns", i, "content"])
    s = sessions.get_live(db, ns, name)  # row lock: appends to one session are numbered one batch at a time
    pending = repo.truncate_pending(db, s.id)
    if pending is not None:
        # The truncate would delete these turns when it runs: refuse them rather than lose them.
        raise Conflict(f"session '{name}' has a truncate pending (job {pending}); append after it finishes",
                       extra={"job": pending})
    if any(t.visible_to for t in batch.turns):
        bound = set(sessions_repo.participant_names(db, [s.id])[s.id])
        for i, t in enumerate(batch.turns):
            unknown = sorted(set(t.visible_to or ()) - bound)
            if unknown:
                raise Unprocessable(f"names agents that are not participants of the session: {', '.join(unknown)}",
                                    loc=["body", "turns", i, "visible_to"])
    first, last = s.turn_count + 1, s.turn_count + len(batch.turns)
    stored = repo.append(db, s.id, s.turn_count, batch.turns)
    return AppendResult(first_seq=first, last_seq=last, turns=[
        TurnRead(seq=seq, speaker=t.speaker, content=t.content, visible_to=t.visible_to, metadata=t.metadata,
                 occurred_at=occurred_at, created_at=created_at)
        for seq, t, (created_at, occurred_at) in zip(range(first, last + 1), batch.turns, stored, strict=True)])


def list_(db: UnitOfWork, ns: Namespace, name: str, *, participant: str | None, after_seq: int, cursor: str | None,
          limit: int) -> Page[TurnRead]:
    s = sessions.get(db, ns, name)
    viewer = None
    if participant is not None:
        agent = agents_repo.get(db, ns.id, participant)
        bound = None if agent is None else sessions_repo.participant(db, s.id, agent.id)
        if bound is None:
            raise NotFound(f"agent '{participant}' is not a participant of session '{name}'")
        viewer, after_seq = participant, max(after_seq, bound.bound_after_seq)
    return page_of(lambda after, n: repo.list_after(db, s.id, after or 0, n, viewer=viewer, after_seq=after_seq),
                   cursor, int, limit, item=to_read, position=lambda r: r.seq)


def redact(db: UnitOfWork, ns: Namespace, name: str, seq: int) -> RedactResult:
    """Redact a turn, in one transaction: erase its content (the seq stays, with ``redacted_at``)
    and delete every insight and memory that cites it. The session row lock orders it with
    appends and truncates, and an integration's fence (a share lock) with its writes."""
    s = sessions.get_live(db, ns, name)
    redacted = repo.redact(db, s.id, s.generation, seq)
    if redacted is None:
        raise NotFound(f"session '{name}' has no turn {seq}")
    redacted_at, insights, memories = redacted
    return RedactResult(seq=seq, redacted_at=redacted_at, insights_deleted=insights, memories_deleted=memories)
