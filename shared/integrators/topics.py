"""Topics of a reflection: the built-in integrator's sentences grouped, and one insight per group.

A sentence joins the topic of the most salient sentence it shares enough distinctive words with
(weighted by how rare each word is in the batch). A topic's insight quotes its most salient
sentences with their speakers, a fact once however often it was repeated, and cites the turns
that state what it quotes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz.utils import default_process

from shared.integrators.base import InsightDraft
from shared.integrators.text import excerpt, same_statement


@dataclass(frozen=True, slots=True)
class Sentence:
    seq: int
    speaker: str
    text: str  # whitespace-collapsed, trimmed to a readable length
    order: int  # position in the reflection, breaks every tie
    terms: tuple[str, ...]  # distinct content words, normalized and sorted
    salience: float


@dataclass(slots=True)
class Topic:
    leader: Sentence
    keys: tuple[str, ...]  # the leader's terms other sentences can share, rarest first
    mass: float  # the summed weight of all the leader's terms
    members: list[Sentence] = field(default_factory=list)

    @property
    def score(self) -> float:
        # A topic several turns come back to matters a little more than a passing remark.
        turns = len({m.seq for m in self.members})
        return self.leader.salience + 0.5 * math.log1p(turns - 1)


def group_topics(sentences: list[Sentence], *, keys: int, overlap: float, fanout: int) -> list[Topic]:
    """Leader clustering: the most salient sentences open topics, the others join the one
    they overlap most, or open their own. A sentence is compared by its ``keys`` most distinctive
    words, joins when they make at least ``overlap`` of the lighter of the two, and a word is
    indexed for at most ``fanout`` topics."""
    n = len(sentences)
    df = Counter(t for s in sentences for t in s.terms)
    # Smoothed inverse document frequency: a word every sentence uses weighs 1, a rare one more.
    idf = {t: 1 + math.log((1 + n) / (1 + c)) for t, c in df.items()}
    topics: list[Topic] = []
    index: dict[str, list[int]] = {}
    repeats: dict[tuple[str, ...], int] = {}
    for s in sorted(sentences, key=lambda s: (-s.salience, s.order)):
        if (seen := repeats.get(s.terms)) is not None:
            topics[seen].members.append(s)  # the same words again: the same statement
            continue
        mass = math.fsum(idf[t] for t in s.terms)
        # Words no other sentence uses weigh in the mass but cannot be shared: the keys are
        # the rarest of the others.
        own_keys = tuple(sorted(sorted((t for t in s.terms if df[t] > 1), key=lambda t: (df[t], t))[:keys]))
        shared: dict[int, list[float]] = {}
        for t in own_keys:
            for g in index.get(t, ()):
                shared.setdefault(g, []).append(idf[t])
        best, best_share = -1, 0.0
        for g in sorted(shared):
            topic, weights = topics[g], shared[g]
            share = math.fsum(weights) / min(mass, topic.mass)
            if len(weights) >= min(2, len(own_keys), len(topic.keys)) and share > best_share:
                best, best_share = g, share
        if best < 0 or best_share < overlap:
            best = len(topics)
            topics.append(Topic(leader=s, keys=own_keys, mass=mass))
            for t in own_keys:
                listed = index.setdefault(t, [])
                if len(listed) < fanout:
                    listed.append(best)
        topics[best].members.append(s)
        if s.terms:
            repeats.setdefault(s.terms, best)
    return topics


def write_insight(topic: Topic, *, quotes: int, chars: int, repeat_ratio: float) -> InsightDraft:
    """The topic's insight: at most ``quotes`` of its sentences within ``chars`` characters, none a
    repeat (``repeat_ratio``) of another."""
    quoted: list[Sentence] = []
    used = 0
    for s in sorted(topic.members, key=lambda s: (-s.salience, s.order)):
        if len(quoted) == quotes:
            break
        if any(same_statement(s.text, q.text, repeat_ratio) for q in quoted):
            continue
        cost = len(s.speaker) + len(s.text) + 3
        if quoted and used + cost > chars:
            continue
        quoted.append(s)
        used += cost
    quoted.sort(key=lambda s: s.order)

    parts: list[str] = []
    speaker = None
    for s in quoted:
        parts.append(s.text if s.speaker == speaker else f"{s.speaker}: {s.text}")
        speaker = s.speaker
    content = excerpt(" ".join(parts), chars)

    # Absolute (not batch-relative) scale so importance compares across reflections, and
    # saturating so only topics dense with the batch's key phrases get near 10.
    importance = min(10, max(1, 1 + round(9 * (1 - math.exp(-topic.score / 3)))))
    # It cites the turns of the sentences it quotes and of the members that say one of them word
    # for word (case and punctuation aside). A near-repeat ("Grace is not vegetarian", "release
    # 2" for "release 1") or a member left out for room is not cited: its own observation holds it.
    said = {default_process(q.text) for q in quoted}
    evidence = sorted({m.seq for m in topic.members if default_process(m.text) in said})
    return InsightDraft(content=content, importance=importance, evidence=evidence)
