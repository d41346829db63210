"""Profiles: what a batch of turns says about each person, project or place it names.

A conversation's facts are mostly about someone or something with a name ("Grace works from the
Lisbon office", "Atlas releases move to Friday"). Topic grouping gathers sentences that share
their wording; a profile gathers the sentences that share a name, however they are worded, so
that "what do I know about Grace?" finds them together, each with the turn it comes from.

Names are found without a model, by casing: a capitalized word that appears capitalized inside a
sentence somewhere in the batch (not only at its start, where every word is capitalized) and is
not a stopword. Scripts without case (CJK, Arabic, ...) have no such signal and get no profiles;
their topic insights are unchanged.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A word (any script), with its possessive "'s" left out: "Grace's birthday" is about Grace. It is
# a candidate name when its first letter is uppercase (``str.isupper``: false in scripts without case).
_WORD = re.compile(r"(?<![\w'’-])([^\W\d_][^\W_]*)(?:['’]s)?\b")
# Months and weekdays are capitalized in English but name no one: a profile of "Friday" would
# gather whatever happens on Fridays.
_CALENDAR = frozenset(w.lower() for w in (*calendar.month_name, *calendar.month_abbr, *calendar.day_name,
                                           *calendar.day_abbr) if w)


@dataclass(frozen=True, slots=True)
class Mention:
    """One fact-bearing sentence of the batch, as profiles see it."""

    seq: int
    speaker: str
    text: str
    order: int
    salience: float


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    quoted: tuple[Mention, ...]  # in conversation order
    importance: int
    turns: int  # distinct turns that mention the name


def names_in(text: str) -> list[tuple[str, int]]:
    """Capitalized words of ``text`` with their character offsets."""
    return [(m.group(1), m.start(1)) for m in _WORD.finditer(text) if m.group(1)[0].isupper()]


def _opens(text: str, offset: int) -> bool:
    """Whether the word at ``offset`` opens the sentence or a clause after a colon ("Update: ..."),
    where casing says nothing about it."""
    before = text[:offset].rstrip(" \"'“‘([*_")
    return not before or before.endswith((":", ".", "!", "?", "…", "-", "–", "—"))


def find_names(mentions: Sequence[Mention], stopwords: frozenset[str]) -> dict[str, list[Mention]]:
    """The batch's names, each with the sentences that mention it."""
    inside: set[str] = set()
    found: list[tuple[Mention, list[str]]] = []
    for m in mentions:
        at = names_in(m.text)
        inside.update(word for word, offset in at if not _opens(m.text, offset))
        found.append((m, [word for word, _ in at]))
    by_name: dict[str, list[Mention]] = {}
    for m, words in found:
        for word in dict.fromkeys(words):
            if word in inside and len(word) > 1 and word.lower() not in stopwords and word.lower() not in _CALENDAR:
                by_name.setdefault(word, []).append(m)
    return by_name


def profiles(
    mentions: Sequence[Mention],
    stopwords: frozenset[str],
    *,
    most: int,
    quotes: int,
    chars: int,
    same: Callable[[str, str], bool],
    grouped: Sequence[frozenset[int]] = (),
    new_from: int | None = None,
) -> list[Profile]:
    """Up to ``most`` profiles of the names that at least two turns of the batch mention, the
    most mentioned first; each quotes up to ``quotes`` distinct sentences within ``chars``. A
    profile whose turns one of the ``grouped`` turn sets (the topic insights') holds already would
    repeat that insight, and is left out. With ``new_from``, the mentions of a lower order are
    context (turns integrated before): only a name that a new mention names gets a profile, which
    quotes its new mentions first."""
    chosen: list[Profile] = []
    for name, said in find_names(mentions, stopwords).items():
        turns = len({m.seq for m in said})
        if turns < 2:
            continue  # one sentence is its observation already
        if new_from is not None and all(m.order < new_from for m in said):
            continue  # nothing new about it: an earlier integration wrote its profile
        quoted: list[Mention] = []
        used = len(name) + 2
        # New mentions first; then the most salient, the latest first among equals: what is said
        # last holds now.
        for m in sorted(said, key=lambda m: (new_from is not None and m.order < new_from, -m.salience, -m.order)):
            if len(quoted) == quotes:
                break
            cost = len(m.speaker) + len(m.text) + 3
            if used + cost > chars or any(same(m.text, q.text) for q in quoted):
                continue
            quoted.append(m)
            used += cost
        cited = {m.seq for m in quoted}
        if len(cited) < 2 or any(cited <= g for g in grouped):
            continue
        weight = max(m.salience for m in said) + 0.5 * math.log1p(turns - 1)
        importance = min(10, max(1, 1 + round(9 * (1 - math.exp(-weight / 3)))))
        chosen.append(Profile(name, tuple(sorted(quoted, key=lambda m: m.order)), importance, turns))
    chosen.sort(key=lambda p: (-p.turns, -p.importance, p.name))
    return chosen[:most]


def render(profile: Profile) -> str:
    """"Grace — Yusuf: Grace works from the Lisbon office. Omar: Grace prefers email ..."."""
    parts: list[str] = []
    speaker = None
    for m in profile.quoted:
        parts.append(m.text if m.speaker == speaker else f"{m.speaker}: {m.text}")
        speaker = m.speaker
    return f"{profile.name} — " + " ".join(parts)
