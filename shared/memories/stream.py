"""Writing an agent's memory stream (DESIGN.md section 2, Integrate): one observation per turn it
saw, one reflection per insight of the integrator; a near-duplicate of a recent memory of the same
kind reinforces that memory instead of repeating it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rapidfuzz import fuzz, process, utils

from shared.embedders import Embedder, EmbedderError
from shared.integrators import ChatTurn, InsightDraft, IntegratorError
from shared.memories import repository as repo
from shared.memories import vectors
from shared.memories.schemas import MemoryKind


@dataclass
class Entry:
    kind: MemoryKind
    speaker: str | None
    content: str
    importance: int
    evidence: list[int]
    occurred_at: datetime
    vector: list[float] | None = None

    @property
    def said(self) -> str:
        """What near-duplicates are compared on, and what is embedded."""
        return f"{self.speaker}: {self.content}" if self.speaker else self.content


def observation_importance(turn: ChatTurn, drafts: Sequence[InsightDraft]) -> int:
    """An observation matters as much as the most important insight that rests on it; a turn no
    insight cites matters a little more the more it says (2 to 4)."""
    cited = [d.importance for d in drafts if turn.seq in d.evidence]
    return max([2 + min(2, len(turn.content.split()) // 12), *cited])


def entries(turns: Sequence[ChatTurn], drafts: Sequence[InsightDraft], occurred: dict[int, datetime]) -> list[Entry]:
    """The memories a participant's integration may write: observations, then reflections (which
    happened when the latest turn they rest on did)."""
    out = [Entry(MemoryKind.OBSERVATION, t.speaker, t.content, observation_importance(t, drafts), [t.seq],
                 occurred[t.seq]) for t in turns]
    out += [Entry(MemoryKind.REFLECTION, None, d.content, d.importance, sorted(set(d.evidence)),
                  max(occurred[s] for s in d.evidence)) for d in drafts]
    return out


def embed(embedder: Embedder, batch: Sequence[Entry]) -> None:
    """Give the entries their vectors, in the embedder's batches, before any write transaction."""
    if not batch:
        return
    try:
        found = embedder.embed([e.said for e in batch])
    except EmbedderError as exc:
        raise IntegratorError(f"embedder {embedder.name}: {exc}", retryable=exc.retryable) from None
    for entry, vector in zip(batch, found, strict=True):
        entry.vector = vector


def sift(known: Sequence[repo.Known], batch: Sequence[Entry], threshold: float) -> tuple[list[Entry], list[int]]:
    """What a write of the entries does to the agent's stream, given its ``known`` latest memories
    (read under the agent's lock): the entries to insert, in order, and the ids of the memories to
    reinforce (once per time seen again)."""
    texts = {kind: [k.text for k in known if k.kind == kind] for kind in MemoryKind}
    ids: dict[MemoryKind, list[int | None]] = {kind: [k.id for k in known if k.kind == kind] for kind in MemoryKind}
    new: list[Entry] = []
    reinforced: list[int] = []
    for entry in batch:
        # An observation is seen again only in the same words from the same speaker (case and
        # punctuation aside): "the deploy moved to Thursday" must not reinforce "... to Tuesday".
        # Reflections, written by the integrator, are near-duplicates above the threshold.
        cutoff = 100.0 if entry.kind == MemoryKind.OBSERVATION else threshold
        pool = texts[entry.kind]
        match = process.extractOne(entry.said, pool, scorer=fuzz.token_sort_ratio, processor=utils.default_process,
                                   score_cutoff=cutoff) if pool else None
        if match is not None:
            known_id = ids[entry.kind][match[2]]
            if known_id is not None:
                reinforced.append(known_id)  # seen again: reinforce, do not repeat
            continue
        pool.append(entry.said)
        ids[entry.kind].append(None)  # a memory of this very write: nothing to reinforce yet
        new.append(entry)
    return new, reinforced


def rows_json(new: Sequence[Entry]) -> str:
    """The entries as the JSON list INSERT_MEMORIES reads."""
    return json.dumps([{"kind": e.kind.value, "speaker": e.speaker, "content": e.content, "importance": e.importance,
                        "evidence": e.evidence, "occurred_at": e.occurred_at.isoformat()} for e in new])


def vectors_json(new: Sequence[Entry]) -> str | None:
    """The vectors of the entries that have one, as the JSON list INSERT_VECTORS reads; None if none."""
    found = [{"kind": e.kind.value, "speaker": e.speaker, "content": e.content, "dimensions": len(e.vector),
              "embedding": vectors.literal(e.vector)} for e in new if e.vector is not None]
    return json.dumps(found) if found else None
