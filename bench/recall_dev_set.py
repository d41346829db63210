"""The LongMemEval_S dev set (see bench/recall_dev.py): read from outside the project, each
conversation mapped to an agent and its haystack to Engram sessions, the questions split into a
tuning half and a held-out half (**Split**)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

ENV = "ENGRAM_RECALL_DEV"
FILE = "longmemeval_s.json"
DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "recall-dev"
CATEGORIES = ("single-session-user", "single-session-assistant", "single-session-preference", "multi-session",
              "temporal-reasoning", "knowledge-update")
HALVES = ("tune", "heldout")


class DevSetMissing(RuntimeError):
    """The dev set's file is not where it is looked for."""


@dataclass(frozen=True)
class Session:
    name: str  # the Engram session
    source: str  # the dataset's session id
    date: datetime
    turns: tuple[tuple[str, str], ...]  # (speaker in the dataset: user or assistant, text)


@dataclass(frozen=True)
class Conversation:
    id: str
    agent: str
    sessions: tuple[Session, ...]


@dataclass(frozen=True)
class Question:
    id: str
    conversation: str
    agent: str
    text: str
    category: str
    half: str
    rank: int  # position in its category's sha256 order: tune at even ranks, heldout at odd ones
    evidence: tuple[tuple[str, int], ...]  # (session name, seq); empty when session-level only
    evidence_level: str
    evidence_sessions: tuple[str, ...]  # dataset session ids
    abstention: bool

    @property
    def asked(self) -> bool:
        return not self.abstention and self.evidence_level == "turn" and bool(self.evidence)


@dataclass(frozen=True)
class DevSet:
    path: Path
    conversations: tuple[Conversation, ...]
    questions: tuple[Question, ...]

    def conversation(self, cid: str) -> Conversation:
        return next(c for c in self.conversations if c.id == cid)

    @property
    def turns(self) -> int:
        return sum(len(s.turns) for c in self.conversations for s in c.sessions)


def data_file() -> Path:
    """Where the set is read from: ENGRAM_RECALL_DEV (the folder or the file), else ../shared/data/recall-dev."""
    given = os.environ.get(ENV)
    where = Path(given).expanduser() if given else DEFAULT_DIR
    return where if where.suffix == ".json" else where / FILE


def agent_name(question_id: str) -> str:
    return "lme-" + re.sub(r"[^a-z0-9_-]", "-", question_id.lower())


def _hash(question_id: str) -> str:
    return hashlib.sha256(question_id.encode()).hexdigest()


def load_set(path: Path | None = None) -> DevSet:
    """The whole set, split into halves; DevSetMissing when the file is not there."""
    path = path or data_file()
    if not path.is_file():
        raise DevSetMissing(f"recall dev set not found: {path} (the LongMemEval_S subset; it lives outside the "
                            f"project, in ../shared/data/recall-dev, or set {ENV} to its folder or file)")
    raw = json.loads(path.read_text())
    places: dict[str, int] = {}  # question id -> rank in its category
    for category in CATEGORIES:
        ids = sorted((q["id"] for c in raw["conversations"] for q in c["questions"] if q["category"] == category),
                     key=_hash)
        places.update({qid: i for i, qid in enumerate(ids)})
    conversations: list[Conversation] = []
    questions: list[Question] = []
    for c in raw["conversations"]:
        agent = agent_name(c["id"])
        sessions: list[Session] = []
        where: dict[str, tuple[str, dict[str, int]]] = {}  # dataset session id -> (name, turn id -> seq)
        for k, s in enumerate(c["sessions"]):
            name = f"{agent}-{k:02d}"
            turns = tuple((t["speaker"], t["text"]) for t in s["turns"])
            sessions.append(Session(name, s["id"], datetime.fromisoformat(s["date"]).replace(tzinfo=UTC), turns))
            where[s["id"]] = (name, {t["id"]: n for n, t in enumerate(s["turns"], start=1)})
        conversations.append(Conversation(c["id"], agent, tuple(sessions)))
        for q in c["questions"]:
            evidence: list[tuple[str, int]] = []
            if q["evidence_level"] == "turn":
                for turn_id in q["evidence"]:
                    name, seqs = where[turn_id.rsplit(":", 1)[0]]
                    evidence.append((name, seqs[turn_id]))
            rank = places[q["id"]]
            questions.append(Question(q["id"], c["id"], agent, q["question"], q["category"], HALVES[rank % 2], rank,
                                      tuple(evidence), q["evidence_level"], tuple(q["evidence_sessions"]),
                                      bool(q["abstention"])))
    return DevSet(path, tuple(conversations), tuple(questions))


def select(ds: DevSet, halves: Sequence[str] = HALVES, limit: int | None = None) -> DevSet:
    """The questions of these halves, the first ``limit`` in (rank, category) order, and their conversations."""
    chosen = sorted((q for q in ds.questions if q.half in halves),
                    key=lambda q: (q.rank, CATEGORIES.index(q.category)))[:limit]
    ids = {q.conversation for q in chosen}
    return replace(ds, conversations=tuple(c for c in ds.conversations if c.id in ids),
                   questions=tuple(sorted(chosen, key=ds.questions.index)))
