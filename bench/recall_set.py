"""A generated recall set: multi-session conversations and questions with the turns that answer them.

Deterministic (a seeded `random.Random`, no network, no model): the same seed gives the same
set. The conversations are team chat between people and the agents bound to each session,
mostly small talk around facts about people, services and projects. The questions come in five
kinds:

- single-fact: a fact stated once, asked with words close to the statement;
- long-ago: a fact stated early in one of the first sessions, weeks and hundreds of turns before
  the end;
- paraphrased: asked with other words than the statement (same proper names);
- changed-over-time: a value stated, then changed once or twice in later sessions; the evidence
  is the turn with the latest value only, and the question is worded like the first statement;
- multi-session: two facts from two sessions answer it together.

A question is only asked of an agent that can see every turn of its evidence (bound to the
session, and named in `visible_to` when the turn is private).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.recall_templates import (
    AGENT_FILLER,
    AGENTS,
    CITIES,
    FACTS,
    FILLER,
    MULTI,
    PEOPLE,
    PRIVATE_PREFIXES,
    PROJECTS,
    SERVICES,
    SESSION_TOPICS,
    WEEKDAYS,
    FactKind,
)

KINDS = ("single-fact", "changed-over-time", "long-ago", "paraphrased", "multi-session")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Roughly one question per 4.5 turns, so about a third of the turns carry a fact.
TURNS_PER_QUESTION_ROUND = 22.5
FACT_SHARE = 0.45  # at most this share of a session's turns state facts
PRIVATE_SHARE = 0.15


@dataclass(frozen=True)
class Turn:
    speaker: str
    content: str
    occurred_at: datetime
    visible_to: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Conversation:
    session: str
    participants: tuple[str, ...]
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    agent: str
    text: str
    evidence: tuple[tuple[str, int], ...]
    kind: str


@dataclass(frozen=True)
class RecallSet:
    conversations: tuple[Conversation, ...]
    questions: tuple[Question, ...]


def visible(turn: Turn, agent: str, conversation: Conversation) -> bool:
    """Whether `agent` sees `turn`: it is bound to the session and the turn is not private to others."""
    return agent in conversation.participants and (turn.visible_to is None or agent in turn.visible_to)


@dataclass
class _Line:
    """A fact turn before it has a place in its session."""

    session: int
    text: str
    names: frozenset[str]  # people the sentence is about: they do not say it themselves
    private_to: str | None
    early: bool


@dataclass
class _Draft:
    agent: str
    text: str
    kind: str
    lines: list[int]  # evidence, as indexes into the planner's lines
    history: list[int] = field(default_factory=list)  # every value of a changing fact, oldest first


class _Planner:
    def __init__(self, rng: random.Random, sessions: int, turns_per_session: int) -> None:
        self.rng = rng
        self.turns = turns_per_session
        self.capacity = max(1, int(turns_per_session * FACT_SHARE))
        topics = list(SESSION_TOPICS)
        rng.shuffle(topics)
        self.names = [f"{topics[i % len(topics)]}-{i + 1:02d}" for i in range(sessions)]
        # Two agents in turn plus sometimes a third: every agent is in about half the sessions.
        self.participants: list[tuple[str, ...]] = []
        for i in range(sessions):
            chosen = {AGENTS[i % len(AGENTS)], AGENTS[(i + 1) % len(AGENTS)]}
            if rng.random() < 0.5:
                chosen.add(rng.choice(AGENTS))
            self.participants.append(tuple(a for a in AGENTS if a in chosen))
        self.humans = [tuple(rng.sample(PEOPLE, 3)) for _ in range(sessions)]
        self.early_end = max(1, sessions // 4)  # sessions before this one are "long ago"
        self.lines: list[_Line] = []
        self.load = [0] * sessions
        self.used: set[tuple[str, str]] = set()
        self.drafts: list[_Draft] = []

    # -- choosing ---------------------------------------------------------------------------

    def _sessions_of(self, agent: str, lo: int, hi: int) -> list[int]:
        return [i for i in range(lo, hi) if agent in self.participants[i] and self.load[i] < self.capacity]

    def _subjects(self, fk: FactKind) -> list[str]:
        pool: tuple[str, ...] = {"person": PEOPLE, "service": tuple(s for s, _ in SERVICES), "project": PROJECTS}[fk.subject]
        return [s for s in pool if (fk.name, s) not in self.used]

    def _value(self, fk: FactKind, subject: str, avoid: tuple[str, ...] = ()) -> str:
        return self.rng.choice([v for v in fk.values if v != subject and v not in avoid])

    def _line(self, session: int, text: str, names: set[str], agent: str, *, early: bool = False) -> int:
        # Some facts are told to the asking agent alone: a question about them is fair for it only.
        private_to = agent if self.rng.random() < PRIVATE_SHARE else None
        if private_to is not None:
            text = self.rng.choice(PRIVATE_PREFIXES) + text
        self.lines.append(_Line(session, text, frozenset(names & set(PEOPLE)), private_to, early))
        self.load[session] += 1
        return len(self.lines) - 1

    # -- one question of each kind ------------------------------------------------------------

    def plan(self, kind: str, agent: str) -> bool:
        n = len(self.participants)
        if kind == "multi-session":
            return self._multi(agent)
        if kind == "changed-over-time":
            return self._changed(agent)
        facts = [fk for fk in FACTS if self._subjects(fk)]
        if not facts:
            return False
        fk = self.rng.choice(facts)
        lo, hi = (0, self.early_end) if kind == "long-ago" else (min(self.early_end, n - 1), n)
        sessions = self._sessions_of(agent, lo, hi)
        if not sessions:
            return False
        subject = self.rng.choice(self._subjects(fk))
        value = self._value(fk, subject)
        self.used.add((fk.name, subject))
        line = self._line(
            self.rng.choice(sessions),
            _say(self.rng.choice(fk.states), subject, value),
            {subject, value},
            agent,
            early=kind == "long-ago",
        )
        asks = fk.rewordings if kind == "paraphrased" else fk.asks
        self.drafts.append(_Draft(agent, _say(self.rng.choice(asks), subject, value), kind, [line]))
        return True

    def _changed(self, agent: str) -> bool:
        facts = [fk for fk in FACTS if fk.changes and self._subjects(fk)]
        count = 3 if self.rng.random() < 0.5 else 2
        sessions = self._sessions_of(agent, 0, len(self.participants))
        if not facts or len(sessions) < 2:
            return False
        # The first statement comes from the first half of the agent's sessions, so changes follow it.
        firsts = [s for s in sessions[: max(1, len(sessions) // 2)] if s < sessions[-1]]
        if not firsts:
            return False
        first = self.rng.choice(firsts)
        after = [s for s in sessions if s > first]
        later = sorted(self.rng.sample(after, min(count - 1, len(after))))
        fk = self.rng.choice(facts)
        subject = self.rng.choice(self._subjects(fk))
        self.used.add((fk.name, subject))
        values: list[str] = []
        for _ in range(1 + len(later)):
            values.append(self._value(fk, subject, tuple(values)))
        lines = [self._line(first, _say(self.rng.choice(fk.states), subject, values[0]), {subject, values[0]}, agent)]
        for session, old, new in zip(later, values, values[1:], strict=False):
            text = _say(self.rng.choice(fk.changes), subject, new, old)
            lines.append(self._line(session, text, {subject, old, new}, agent))
        # Asked as the first statement put it, or in other words: neither matches how the change was said.
        question = _say(self.rng.choice(fk.asks + fk.rewordings), subject, values[-1])
        self.drafts.append(_Draft(agent, question, "changed-over-time", [lines[-1]], lines))
        return True

    def _multi(self, agent: str) -> bool:
        sessions = self._sessions_of(agent, 0, len(self.participants))
        if len(sessions) < 2:
            return False
        kinds = {fk.name: fk for fk in FACTS}
        options = []
        for first_kind, second_kind, chained, template in MULTI:
            fa, fb = kinds[first_kind], kinds[second_kind]
            for subject in self._subjects(fa):
                if chained or (fb.name, subject) not in self.used:
                    options.append((fa, fb, chained, template, subject))
        self.rng.shuffle(options)
        for fa, fb, chained, template, subject in options:
            value = self._value(fa, subject)
            second_subject = value if chained else subject
            if (fb.name, second_subject) in self.used:
                continue
            second_value = self._value(fb, second_subject)
            self.used |= {(fa.name, subject), (fb.name, second_subject)}
            one, two = self.rng.sample(sessions, 2)
            lines = [
                self._line(one, _say(self.rng.choice(fa.states), subject, value), {subject, value}, agent),
                self._line(
                    two, _say(self.rng.choice(fb.states), second_subject, second_value), {second_subject, second_value}, agent
                ),
            ]
            self.drafts.append(_Draft(agent, _say(template, subject, value), "multi-session", lines))
            return True
        return False

    # -- laying the turns out ---------------------------------------------------------------------

    def conversations(self) -> tuple[tuple[Conversation, ...], dict[int, tuple[str, int]]]:
        """The sessions with their fact lines placed among small talk, and where each line landed."""
        placed: dict[int, tuple[str, int]] = {}
        out = []
        for i, name in enumerate(self.names):
            mine = [k for k, line in enumerate(self.lines) if line.session == i]
            free = list(range(self.turns))
            at: dict[int, int] = {}
            for k in sorted(mine, key=lambda k: not self.lines[k].early):
                half = [p for p in free if p < self.turns // 2] if self.lines[k].early else []
                pos = self.rng.choice(half or free)
                free.remove(pos)
                at[pos] = k
            # Two sessions a week, each a morning: six weeks for the default twelve.
            clock = START + timedelta(days=3 * i + i // 2, minutes=self.rng.randint(0, 90))
            turns = []
            for pos in range(self.turns):
                clock += timedelta(seconds=self.rng.randint(20, 240))
                if pos in at:
                    turns.append(self._fact_turn(i, self.lines[at[pos]], clock))
                    placed[at[pos]] = (name, pos + 1)
                else:
                    turns.append(self._filler_turn(i, clock))
            out.append(Conversation(name, self.participants[i], tuple(turns)))
        return tuple(out), placed

    def _fact_turn(self, session: int, line: _Line, clock: datetime) -> Turn:
        speakers = [h for h in self.humans[session] if h not in line.names] or list(self.participants[session])
        visible_to = (line.private_to,) if line.private_to else None
        return Turn(self.rng.choice(speakers), line.text, clock, visible_to)

    def _filler_turn(self, session: int, clock: datetime) -> Turn:
        rng = self.rng
        slots = {
            "s": rng.choice(SERVICES)[0], "j": rng.choice(PROJECTS),
            "c": rng.choice(CITIES), "d": rng.choice(WEEKDAYS),
        }  # fmt: skip
        slots["p"], slots["q"] = rng.sample(PEOPLE, 2)
        if rng.random() < 0.35:
            speaker, template = rng.choice(self.participants[session]), rng.choice(AGENT_FILLER)
        else:
            speaker, template = rng.choice(self.humans[session]), rng.choice(FILLER)
        text = template.format(**slots)
        visible_to = (rng.choice(self.participants[session]),) if rng.random() < 0.05 else None
        return Turn(speaker, text[0].upper() + text[1:], clock, visible_to)


def _say(template: str, subject: str, value: str, old: str = "") -> str:
    alias = dict(SERVICES).get(subject, subject)
    text = template.format(s=subject, S=subject[0].upper() + subject[1:], a=alias, v=value, old=old)
    return text[0].upper() + text[1:]


def build_with_history(
    seed: int = 7, *, sessions: int = 12, turns_per_session: int = 60
) -> tuple[RecallSet, dict[int, tuple[tuple[str, int], ...]]]:
    """The set, and for each changed-over-time question (by index) every turn that stated a value, oldest first."""
    if sessions < 2 or turns_per_session < 4:
        raise ValueError("a recall set needs at least 2 sessions of 4 turns")
    rng = random.Random(seed)
    planner = _Planner(rng, sessions, turns_per_session)
    rounds = max(1, round(sessions * turns_per_session / TURNS_PER_QUESTION_ROUND))
    asked = 0
    for _ in range(rounds):
        # Multi-session questions pick first: they need two unused facts that fit together.
        for kind in sorted(KINDS, key=lambda k: k != "multi-session"):
            # Agents take turns asking; a kind that no longer fits (no room, no subject left) is skipped.
            for attempt in range(len(AGENTS)):
                if planner.plan(kind, AGENTS[(asked + attempt) % len(AGENTS)]):
                    asked += 1
                    break
    conversations, placed = planner.conversations()
    questions = tuple(Question(d.agent, d.text, tuple(placed[k] for k in d.lines), d.kind) for d in planner.drafts)
    history = {i: tuple(placed[k] for k in d.history) for i, d in enumerate(planner.drafts) if d.history}
    return RecallSet(conversations, questions), history


def build(seed: int = 7, *, sessions: int = 12, turns_per_session: int = 60) -> RecallSet:
    """The recall set for `seed`: the same arguments always give the same set."""
    return build_with_history(seed, sessions=sessions, turns_per_session=turns_per_session)[0]
