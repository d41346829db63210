"""The built-in integrator: offline, deterministic, extractive.

It writes no words of its own. It splits the participant's turns into sentences, drops filler
(greetings, thanks, bare questions), scores what is left by salience and groups it by topic. Each
topic becomes one insight that quotes its most salient sentences with their speakers and cites
the turns that state them. Each name the batch mentions in several turns gets a profile too
(``shared.integrators.profiles``): the sentences that name it, whatever their wording.

- Sentences: sentencex, Wikimedia's rule-based segmenter (~300 languages, compiled, no model).
- Salience: YAKE keyphrases of the batch (a statistical keyword extractor, no model, no network);
  a batch of one sentence has nothing to rank it against and skips YAKE (``_lone_salience``).
- Topics (``shared.integrators.topics``): a sentence joins the topic of the most salient sentence
  it shares enough distinctive words with (weighted by how rare each word is in the batch);
  rapidfuzz spots sentences that repeat one another, so an insight quotes a fact once (and cites
  every turn that stated it in the same words).
- Words, filler, budgets and excerpts: ``shared.integrators.text``.

Same turns in, same insights out: no randomness, and nothing depends on set or hash order.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import sentencex
import yake

from shared.integrators import profiles
from shared.integrators.base import ChatTurn, InsightDraft, Reflection
from shared.integrators.text import (
    COURTESY,
    WORD,
    clean,
    excerpt,
    fit_budget,
    same_statement,
    states_something,
    yake_corpus,
)
from shared.integrators.topics import Sentence, group_topics, write_insight

# sentencex ships no type information (pyproject.toml tells mypy so); segment(language, text) is
# typed here.
_segment = cast(Callable[[str, str], Iterable[str]], sentencex.segment)

# YAKE's default deduplication threshold (KeywordExtractor's dedup_lim).
_YAKE_DEDUP_LIMIT = 0.9


class BuiltinIntegrator:
    """Extractive integrator: salient sentences grouped by topic, one insight per topic."""

    name = "builtin"

    #: Most insights from one reflection. Below that, one per this many fact-bearing turns, plus
    #: headroom so a short session keeps each of its few distinct facts.
    max_insights = 20
    fact_turns_per_insight = 2
    insight_headroom = 3
    #: Characters of a turn read at all (a pasted document is not conversation), and characters
    #: of all turns split into sentences; long turns are truncated first, so every turn counts.
    turn_chars = 8_000
    split_char_budget = 120_000
    #: Characters fed to YAKE per reflection. YAKE costs 10-30 µs per character (more when
    #: every word is new), so this bounds a 1,000-turn reflection to well under a second. Over
    #: budget, sentences are sampled evenly across the batch and the longest truncated first.
    yake_char_budget = 12_000
    #: Characters a sentence fed to YAKE should keep at least: the gist of it.
    yake_sentence_chars = 60
    #: Characters of one sentence kept, of one insight, and sentences quoted in one insight.
    sentence_chars = 300
    insight_chars = 380
    max_quotes = 4
    #: Profiles of the names the batch mentions most (see shared.integrators.profiles): at most
    #: this many per reflection, each quoting at most this many sentences within this many characters.
    max_profiles = 16
    profile_quotes = 6
    profile_chars = 600
    #: Characters of one sentence searched for keyphrases.
    match_chars = 400
    #: Keyphrases YAKE returns; their rank sets their weight.
    top_phrases = 60
    max_phrase_words = 3
    #: A sentence joins a topic when the words it shares with the topic's leader, weighted by how
    #: rare they are in the batch, make at least this share of the lighter of the two (and they
    #: share two words, when both have two). A word is indexed for at most this many topics, so
    #: grouping stays linear in the number of sentences.
    topic_overlap = 0.4
    index_fanout = 8
    #: Words of a sentence compared with other topics: its most distinctive ones.
    topic_keys = 8
    #: rapidfuzz token_sort_ratio from which two sentences say the same thing.
    repeat_ratio = 90.0
    #: A word this long is a hash or a pasted blob, not content.
    max_word_chars = 48

    def __init__(self, language: str = "en") -> None:
        self._language = language
        # One extractor per integrator: it loads the stopword list from disk when constructed. It
        # returns every candidate phrase, ranked, without YAKE's deduplication (dedup_lim 1.0): that
        # compares each candidate with every phrase kept so far (about a thousand comparisons for a
        # single 20-word turn, more than the extraction itself), so it is done here instead, with
        # YAKE's own similarity and threshold but only on the pairs that similarity can find close
        # (see _keyphrases).
        self._extractor = yake.KeywordExtractor(lan=language, n=self.max_phrase_words, top=1 << 30, dedup_lim=1.0)
        self._extracted = 0
        self._stopwords = frozenset(w for w in self._extractor.stopword_set if w) | COURTESY
        # Participants of one session mostly see the same turns: their keyphrases are computed once.
        self._recent: OrderedDict[str, dict[tuple[str, ...], float]] = OrderedDict()
        self._recent_lock = threading.Lock()

    # --- public ----------------------------------------------------------------------------

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        """Insights for the reflection's turns; evidence only cites seqs of those turns, and of the
        earlier turns that a profile of a name the new turns mention draws on."""
        facts = self._fact_sentences(self._cleaned(reflection.turns))
        if not facts:
            return []

        weights: dict[tuple[str, ...], float] | None = None
        if len(facts) == 1:
            saliences = [self._lone_salience(facts[0][1])]
        else:
            weights = self._phrase_weights([text for _, text, _ in facts])
            saliences = [self._salience(text, weights) for _, text, _ in facts]
        sentences = [
            Sentence(turn.seq, turn.speaker, text, i, terms, salience)
            for i, ((turn, text, terms), salience) in enumerate(zip(facts, saliences, strict=True))
        ]
        topics = group_topics(sentences, keys=self.topic_keys, overlap=self.topic_overlap, fanout=self.index_fanout)

        fact_turns = len({s.seq for s in sentences})
        want = min(self.max_insights, math.ceil(fact_turns / self.fact_turns_per_insight) + self.insight_headroom)
        chosen = sorted(topics, key=lambda t: (-t.score, t.leader.order))[:want]
        # In conversation order: the insights read as a short story of the batch.
        chosen.sort(key=lambda t: min(m.order for m in t.members))
        insights = [write_insight(t, quotes=self.max_quotes, chars=self.insight_chars, repeat_ratio=self.repeat_ratio)
                    for t in chosen]
        # The earlier turns' sentences, before the new ones in order, weighed by the new batch's
        # keyphrases: the context a profile of a name the new turns mention draws on.
        earlier = self._fact_sentences(self._cleaned(reflection.earlier))
        before = [
            Sentence(turn.seq, turn.speaker, text, i - len(earlier), terms,
                     self._salience(text, weights) if weights is not None else self._lone_salience(text))
            for i, (turn, text, terms) in enumerate(earlier)
        ]
        return insights + self._profiles([*before, *sentences], [frozenset(i.evidence) for i in insights])

    def _cleaned(self, turns: Sequence[ChatTurn]) -> list[tuple[ChatTurn, str]]:
        cleaned = [(t, clean(t.content[: 2 * self.turn_chars])) for t in turns]
        return [(t, text) for t, text in cleaned if text]

    def _profiles(self, sentences: list[Sentence], grouped: list[frozenset[int]]) -> list[InsightDraft]:
        """Profiles of the names the new sentences (order 0 and up) mention, drawing on all of them."""
        mentions = [profiles.Mention(s.seq, s.speaker, s.text, s.order, s.salience) for s in sentences]
        found = profiles.profiles(mentions, self._stopwords, most=self.max_profiles, quotes=self.profile_quotes,
                                  chars=self.profile_chars,
                                  same=lambda a, b: same_statement(a, b, self.repeat_ratio), grouped=grouped,
                                  new_from=0)
        return [InsightDraft(content=profiles.render(p), importance=p.importance,
                             evidence=sorted({m.seq for m in p.quoted})) for p in found]

    # --- sentences ---------------------------------------------------------------------------

    def _fact_sentences(self, turns: list[tuple[ChatTurn, str]]) -> list[tuple[ChatTurn, str, tuple[str, ...]]]:
        """The turns' sentences that state something, with their content terms."""
        texts = fit_budget([text[: self.turn_chars] for _, text in turns], self.split_char_budget)
        facts: list[tuple[ChatTurn, str, tuple[str, ...]]] = []
        for (turn, whole), text in zip(turns, texts, strict=False):
            try:
                pieces = list(_segment(self._language, text))
            except Exception:  # noqa: BLE001 - an unsplittable turn is still one sentence
                pieces = [text]
            if len(text) < len(whole) and len(pieces) > 1:
                pieces.pop()  # cut off mid-sentence by the budget
            for piece in pieces:
                sentence = piece.strip()
                terms = self._terms(sentence)
                if states_something(sentence, terms):
                    facts.append((turn, excerpt(sentence, self.sentence_chars), terms))
        return facts

    def _terms(self, sentence: str) -> tuple[str, ...]:
        """Distinct content words, lowercased, with YAKE's own plural folding (a trailing "s")."""
        terms: set[str] = set()
        for word in WORD.findall(sentence[: self.match_chars].lower()):
            if word in self._stopwords or len(word) > self.max_word_chars:
                continue
            terms.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
        return tuple(sorted(terms))

    # --- salience ----------------------------------------------------------------------------

    def _phrase_weights(self, texts: list[str]) -> dict[tuple[str, ...], float]:
        """YAKE keyphrases of the whole batch, as word tuples, weighted 1.0 (best) down to ~0."""
        stride = max(1, math.ceil(len(texts) * self.yake_sentence_chars / self.yake_char_budget))
        fitted = fit_budget(texts[::stride], self.yake_char_budget)
        corpus = yake_corpus(fitted, self.yake_char_budget)
        with self._recent_lock:
            if corpus in self._recent:
                self._recent.move_to_end(corpus)
                return self._recent[corpus]
        try:
            ranked = self._keyphrases(corpus)
        except Exception:  # noqa: BLE001 - salience then falls back to length alone
            ranked = []
        weights: dict[tuple[str, ...], float] = {}
        for rank, phrase in enumerate(ranked):
            words = tuple(w.lower() for w in WORD.findall(phrase))
            if words and words not in weights:
                weights[words] = (self.top_phrases - rank) / self.top_phrases
        with self._recent_lock:
            self._recent[corpus] = weights
            while len(self._recent) > 8:
                self._recent.popitem(last=False)
        return weights

    def _keyphrases(self, corpus: str) -> list[str]:
        """YAKE's ``top_phrases`` best keyphrases of the corpus, best first, as YAKE itself returns them
        with its default deduplication: a candidate is left out when its ``seqm`` similarity to a
        phrase already kept exceeds 0.9. That similarity is 0 unless the two share their first and
        last characters or are both at most 3 characters long (YAKE's pre-filter), so a candidate is
        compared only with the kept phrases of its (first, last) character pair and the short ones."""
        candidates = self._extractor.extract_keywords(corpus)
        similarity = self._extractor.seqm
        kept: list[str] = []
        by_ends: dict[tuple[str, str], list[str]] = {}
        short: list[str] = []
        for phrase, _score in candidates:
            ends = (phrase[0], phrase[-1])
            near = by_ends.get(ends, [])
            if len(phrase) <= 3:
                near = near + short
            if any(similarity(phrase, other) > _YAKE_DEDUP_LIMIT for other in near):
                continue
            kept.append(phrase)
            by_ends.setdefault(ends, []).append(phrase)
            if len(phrase) <= 3:
                short.append(phrase)
            if len(kept) == self.top_phrases:
                break
        # YAKE empties its similarity caches every 50 documents and after a large one; so do we.
        self._extracted += 1
        if self._extracted % 50 == 0 or len(corpus) > 10_000:
            self._extractor.clear_caches()
        return kept

    def _lone_salience(self, text: str) -> float:
        """The salience of a batch's only sentence, without YAKE (whose fixed cost is most of the
        work of a one-turn batch). With nothing to rank it against, every keyphrase YAKE can find
        is in the sentence, and ``_salience`` counts the best three: their weights are those of
        ranks 1 to 3, or fewer when the sentence has fewer candidate phrases (n-grams of up to
        ``max_phrase_words`` words neither starting nor ending with a stopword, as YAKE's)."""
        words = [w.lower() for w in WORD.findall(text[: self.match_chars])]
        stop = self._extractor.stopword_set
        phrases = {tuple(words[i : i + n]) for n in range(1, self.max_phrase_words + 1)
                   for i in range(len(words) - n + 1) if words[i] not in stop and words[i + n - 1] not in stop}
        best = [(self.top_phrases - rank) / self.top_phrases for rank in range(min(3, len(phrases)))]
        return sum(best) + 0.5 * math.log1p(min(len(words), 60))

    def _salience(self, text: str, weights: dict[tuple[str, ...], float]) -> float:
        words = [w.lower() for w in WORD.findall(text[: self.match_chars])]
        found: dict[tuple[str, ...], float] = {}
        longest = max((len(k) for k in weights), default=0)
        # Every n-gram of the sentence looked up in the phrase table: linear in its length.
        for n in range(1, longest + 1):
            for i in range(len(words) - n + 1):
                gram = tuple(words[i : i + n])
                w = weights.get(gram)
                if w is not None:
                    found[gram] = w
        # The best three phrases count (summing them all would make length decide); length
        # breaks ties and saturates at ~60 words so a wall of text does not outrank a pointed
        # sentence.
        best = sorted(found.values(), reverse=True)[:3]
        return sum(best) + 0.5 * math.log1p(min(len(words), 60))
