"""Writing an agent's memory stream (DESIGN.md section 2, Integrate): one observation per turn it
saw, one reflection per insight of the integrator; a near-duplicate of a recent memory of the same
kind reinforces that memory instead of repeating it."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rapidfuzz import fuzz, process, utils

from shared.embedders import Embedder, EmbedderError
from shared.integrators import ChatTurn, InsightDraft, IntegratorError
from shared.memories import vectors
from shared.models.states import MemoryKind


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


def _compared(said: str) -> str:
    """What near-duplicates are compared on: the words of rapidfuzz's default processor, sorted.
    rapidfuzz's token_sort_ratio of two texts is the plain ratio of these."""
    return " ".join(sorted(utils.default_process(said).split()))


class Window:
    """An agent's ``size`` latest memories as read under its lock, newest first, ready to be
    compared with: for reflections what they say (``_compared``) and their ids; for observations,
    which are seen again only in the same words (a ratio of 100), the newest id by what they say.

    A worker keeps the windows of the agents it wrote last (``window_of``), so that a write reads
    only the memories added since (repository.RECENT after ``high``) and checks that none in the
    window was deleted since (repository.COUNT_BETWEEN ``low``..``high`` equals ``len(order)``),
    instead of reading the whole window again."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.order: list[tuple[int, str, str]] = []  # (id, kind, compared), newest first
        self.reflections: list[str] = []  # newest first
        self.reflection_ids: list[int] = []
        self.observations: dict[str, int] = {}
        self.chars = 0

    @property
    def high(self) -> int:
        return self.order[0][0] if self.order else 0

    @property
    def low(self) -> int:
        return self.order[-1][0] if self.order else 1

    def advance(self, newer: Sequence[tuple[int, str, str]]) -> None:
        """Add memories read after ``high`` (newest first); the oldest fall out of the window."""
        if not newer:
            return
        order = [(memory_id, kind, _compared(said)) for memory_id, kind, said in newer]
        reflections = [(memory_id, said) for memory_id, kind, said in order if kind == MemoryKind.REFLECTION]
        self.reflections[:0] = [said for _, said in reflections]
        self.reflection_ids[:0] = [memory_id for memory_id, _ in reflections]
        for memory_id, kind, said in reversed(order):  # oldest first: the newest of equals stays
            if kind == MemoryKind.OBSERVATION:
                self.observations[said] = memory_id
        self.chars += sum(len(said) for _, _, said in order)
        self.order[:0] = order
        while len(self.order) > self.size:
            memory_id, kind, said = self.order.pop()
            self.chars -= len(said)
            if kind == MemoryKind.REFLECTION:
                self.reflections.pop()
                self.reflection_ids.pop()
            elif self.observations.get(said) == memory_id:
                del self.observations[said]


# The windows a worker process keeps: at most this many agents and characters in all.
WINDOWS_KEPT = 32
WINDOW_CHARS_KEPT = 4_000_000
_windows: OrderedDict[tuple[int, str, int, int], Window] = OrderedDict()


def window_of(database: str, agent_id: int, size: int) -> tuple[tuple[int, str, int, int], Window]:
    """The window this process kept for the agent (taken out of the cache: give it back with
    ``keep`` once it is up to date), or an empty one."""
    key = (os.getpid(), database, agent_id, size)
    return key, _windows.pop(key, None) or Window(size)


def kept(database: str, size: int) -> dict[int, Window]:
    """The windows this process keeps, by agent id (left in the cache)."""
    pid = os.getpid()
    return {key[2]: w for key, w in _windows.items() if key[0] == pid and key[1] == database and key[3] == size}


def keep(key: tuple[int, str, int, int], window: Window) -> None:
    _windows[key] = window
    total = sum(w.chars for w in _windows.values())
    while _windows and (len(_windows) > WINDOWS_KEPT or total > WINDOW_CHARS_KEPT):
        total -= _windows.popitem(last=False)[1].chars


def sift(window: Window, batch: Sequence[Entry], threshold: float) -> tuple[list[Entry], list[int]]:
    """What a write of the entries does to the agent's stream, given its ``window`` of latest
    memories (read under the agent's lock): the entries to insert, in order, and the ids of the
    memories to reinforce (once per time seen again).

    An observation is seen again only in the same words from the same speaker (case and
    punctuation aside: rapidfuzz's token_sort_ratio of 100): "the deploy moved to Thursday" must
    not reinforce "... to Tuesday". Reflections, written by the integrator, are near-duplicates
    from ``threshold``. A match among the window's memories (the newest, or the best) is reinforced;
    one among the entries of this very write has nothing to reinforce yet."""
    observations: set[str] = set()  # of this very write
    reflections: list[str] = []
    new: list[Entry] = []
    reinforced: list[int] = []
    for entry in batch:
        said = _compared(entry.said)
        if entry.kind == MemoryKind.OBSERVATION:
            known_id = window.observations.get(said)
            if known_id is not None:
                reinforced.append(known_id)
            elif said not in observations:
                observations.add(said)
                new.append(entry)
            continue
        known = process.extractOne(said, window.reflections, scorer=fuzz.ratio, processor=None,
                                   score_cutoff=threshold) if window.reflections else None
        mine = process.extractOne(said, reflections, scorer=fuzz.ratio, processor=None,
                                  score_cutoff=threshold) if reflections else None
        if known is not None and (mine is None or known[1] >= mine[1]):
            reinforced.append(window.reflection_ids[known[2]])
        elif mine is None:
            reflections.append(said)
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
