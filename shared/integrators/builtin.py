"""The built-in integrator: offline, deterministic, extractive.

It does not write new sentences; it picks the participant's most salient turns and keeps them
as insights. Salience comes from YAKE keyphrases (a statistical keyword extractor, no model, no
network): a turn that mentions the conversation's key phrases, and says more, matters more.
Same turns in, same insights out — there is no randomness anywhere in the pipeline.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import yake

from shared.integrators.base import ChatTurn, InsightDraft, Reflection

# \w is Unicode-aware, so this tokenizes Latin, Cyrillic, CJK runs, digits, ... alike; emoji and
# punctuation are not words, which is what we want for matching keyphrases.
_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
# Runs of 64+ non-space characters (a pasted hash, base64, a long CJK sentence) make YAKE's
# sentence splitter slow; breaking them up keeps the text but bounds the cost.
_LONG_RUN = re.compile(r"\S{64,}")
_SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")


@dataclass(frozen=True, slots=True)
class _Scored:
    turn: ChatTurn
    text: str  # whitespace-collapsed content
    phrases: tuple[str, ...]  # keyphrases found in the turn, best-ranked first
    salience: float


class BuiltinIntegrator:
    """Extractive integrator: the most salient turns, tagged with their keyphrases, become insights."""

    name = "builtin"

    #: Most insights from one reflection, and roughly one insight per this many turns.
    max_insights = 8
    turns_per_insight = 4
    #: Characters of a turn kept in an insight.
    excerpt_chars = 300
    #: Characters fed to YAKE per reflection. YAKE costs ~5 µs per character, so this bounds a
    #: 1,000-turn reflection to a fraction of a second; long turns are truncated first.
    yake_char_budget = 40_000
    #: Characters of one turn searched for keyphrases (a 32k-character turn is not worth more).
    match_chars = 4_000
    #: Keyphrases YAKE returns; their rank sets their weight.
    top_phrases = 40
    max_phrase_words = 3

    def __init__(self, language: str = "en") -> None:
        # One extractor per integrator: it loads the stopword list from disk when constructed.
        self._extractor = yake.KeywordExtractor(
            lan=language, n=self.max_phrase_words, top=self.top_phrases
        )
        self._stopwords = frozenset(w for w in self._extractor.stopword_set if w)
        # Participants of one session mostly see the same turns: their keyphrases are computed once.
        self._recent: OrderedDict[str, dict[tuple[str, ...], float]] = OrderedDict()
        self._recent_lock = threading.Lock()

    # --- public ----------------------------------------------------------------------------

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        """Insights for the reflection's turns; evidence only cites seqs of those turns."""
        turns = [
            (t, _SPACE.sub(" ", t.content).strip()) for t in reflection.turns if t.content and t.content.strip()
        ]
        if not turns:
            return []

        weights = self._phrase_weights([text for _, text in turns])
        scored = [self._score(turn, text, weights) for turn, text in turns]
        eligible = [s for s in scored if self._non_trivial(s.text)]
        if not eligible:
            return []

        want = min(self.max_insights, max(1, math.ceil(len(turns) / self.turns_per_insight)))
        # Highest salience first; ties go to the earlier turn so the choice is stable.
        chosen = sorted(eligible, key=lambda s: (-s.salience, s.turn.seq))[:want]
        # Present them in conversation order: insights read as a short story of the batch.
        chosen.sort(key=lambda s: s.turn.seq)
        return [self._insight(s, scored) for s in chosen]

    # --- keyphrases --------------------------------------------------------------------------

    def _phrase_weights(self, texts: list[str]) -> dict[tuple[str, ...], float]:
        """YAKE keyphrases of the whole batch, as word tuples, weighted 1.0 (best) down to ~0."""
        corpus = " ".join(_as_sentence(t) for t in _fit_budget(texts, self.yake_char_budget))
        corpus = _LONG_RUN.sub(_break_run, corpus)
        with self._recent_lock:
            if corpus in self._recent:
                self._recent.move_to_end(corpus)
                return self._recent[corpus]
        try:
            ranked = self._extractor.extract_keywords(corpus)
        except Exception:  # noqa: BLE001 - salience then falls back to length alone
            ranked = []
        weights: dict[tuple[str, ...], float] = {}
        for rank, (phrase, _score) in enumerate(ranked):
            words = tuple(w.lower() for w in _WORD.findall(phrase))
            if words and words not in weights:
                weights[words] = (self.top_phrases - rank) / self.top_phrases
        with self._recent_lock:
            self._recent[corpus] = weights
            while len(self._recent) > 8:
                self._recent.popitem(last=False)
        return weights

    def _score(self, turn: ChatTurn, text: str, weights: dict[tuple[str, ...], float]) -> _Scored:
        words = [w.lower() for w in _WORD.findall(text[: self.match_chars])]
        found: dict[tuple[str, ...], float] = {}
        longest = max((len(k) for k in weights), default=0)
        # Every n-gram of the turn looked up in the phrase table: linear in the turn's length.
        for n in range(1, longest + 1):
            for i in range(len(words) - n + 1):
                gram = tuple(words[i : i + n])
                w = weights.get(gram)
                if w is not None:
                    found[gram] = w
        phrases = tuple(" ".join(k) for k, _ in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))
        # The best three phrases count (a long turn mentions many phrases; summing them all would
        # make length decide); length breaks ties between equally on-topic turns and lets a
        # substantial turn win when YAKE found nothing (very short or symbol-only batches).
        best = sorted(found.values(), reverse=True)[:3]
        # Length saturates at ~60 words so a wall of text does not outrank a pointed turn.
        salience = sum(best) + 0.5 * math.log1p(min(len(words), 60))
        return _Scored(turn=turn, text=text, phrases=phrases, salience=salience)

    def _non_trivial(self, text: str) -> bool:
        """A turn worth remembering carries some content words ("ok", "thanks!" do not)."""
        content = [w for w in _WORD.findall(text[:200]) if w.lower() not in self._stopwords]
        return sum(len(w) for w in content) >= 8

    # --- insight -----------------------------------------------------------------------------

    def _insight(self, s: _Scored, scored: Sequence[_Scored]) -> InsightDraft:
        tags = _distinct_tags(s.phrases, 3)
        prefix = f"[{', '.join(tags)}] " if tags else ""
        content = f"{prefix}{s.turn.speaker}: {_excerpt(s.text, self.excerpt_chars)}"

        evidence = {s.turn.seq}
        if s.phrases:
            # A few other turns on the same top phrase support the insight too.
            top = s.phrases[0]
            seq = s.turn.seq
            others = [o.turn.seq for o in scored if o.turn.seq != seq and top in o.phrases]
            # The nearest ones: they are most likely about the same matter.
            evidence.update(sorted(others, key=lambda o: (abs(o - seq), o))[:3])

        # Absolute (not batch-relative) scale so importance compares across reflections, and
        # saturating so only turns dense with the batch's key phrases get near 10: a short turn
        # with no key phrase is mundane (~2), a few strong key phrases give ~7.
        importance = min(10, max(1, 1 + round(9 * (1 - math.exp(-s.salience / 3)))))
        return InsightDraft(content=content, importance=importance, evidence=sorted(evidence))


# --- helpers ---------------------------------------------------------------------------------


def _fit_budget(texts: list[str], budget: int) -> list[str]:
    """Truncate the longest texts first so the total stays within ``budget`` characters."""
    total = sum(len(t) for t in texts)
    if total <= budget:
        return texts
    # Find the per-text cap c with sum(min(len, c)) <= budget ("water filling"), so short turns
    # are kept whole and every turn still contributes its opening words.
    lengths = sorted(len(t) for t in texts)
    remaining, left = budget, len(lengths)
    cap = 0
    for length in lengths:
        share = remaining // left
        if length <= share:
            remaining -= length
            left -= 1
        else:
            cap = share
            break
    cap = max(cap, 20)
    return [t if len(t) <= cap else _cut(t, cap) for t in texts]


def _break_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return " ".join(run[i : i + 64] for i in range(0, len(run), 64))


def _as_sentence(text: str) -> str:
    # YAKE joins lines with spaces; ending each turn with a full stop keeps keyphrases from
    # spanning two turns.
    return text if text.endswith(_SENTENCE_END) else text + "."


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a space when one is reasonably close."""
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space >= limit * 2 // 3 else cut


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else _cut(text, limit - 1).rstrip() + "…"


def _distinct_tags(phrases: Sequence[str], limit: int) -> list[str]:
    """The best phrases, skipping ones whose words are all inside a phrase already shown."""
    tags: list[str] = []
    for phrase in phrases:
        words = set(phrase.split())
        if any(words <= set(t.split()) or set(t.split()) <= words for t in tags):
            continue
        tags.append(phrase)
        if len(tags) == limit:
            break
    return tags
