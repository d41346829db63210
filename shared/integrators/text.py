"""Text as the built-in integrator reads it: words, cleaning, filler, budgets and excerpts.

Plain string handling, no model and no state: what counts as a word, how a turn is cleaned, which
sentences are filler, how many characters of many texts fit a budget, how a text is cut to a
readable excerpt, and when two sentences say the same thing.
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

# \w is Unicode-aware, so this tokenizes Latin, Cyrillic, CJK runs, digits, ... alike; emoji and
# punctuation are not words, which is what we want for matching keyphrases.
WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
# Control characters (NUL above all, which PostgreSQL text refuses) and byte-order marks.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")
# Runs of 64+ non-space characters (a pasted hash, base64, a long CJK sentence) make YAKE's
# sentence splitter slow; breaking them up keeps the text but bounds the cost.
_LONG_RUN = re.compile(r"\S{64,}")
_SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")
_QUESTION_END = ("?", "？", "؟")
_CLOSERS = " \"'»”’)]}*_"
# Words that make a conversation polite rather than informative. With the stopwords, they do not
# count as content when telling filler ("Nice to meet you Grace.") from facts.
_COURTESY_WORDS = """
hi hello hey thanks thank nice meet great welcome please sure ok okay glad bye goodbye cheers sorry
morning evening afternoon good cool awesome perfect yes yeah yep no nope right got understood alright
fine wonderful excellent lovely appreciate appreciated
"""
COURTESY = frozenset(_COURTESY_WORDS.split())


def clean(text: str) -> str:
    """``text`` without control characters, its whitespace collapsed and trimmed."""
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def states_something(sentence: str, terms: tuple[str, ...]) -> bool:
    """Filler ("ok", "Nice to meet you Grace.") has little content; a question asks for facts
    rather than giving them, unless it carries several itself ("Shall we move the billing
    deploy to Friday after the migration?")."""
    if sum(len(t) for t in terms) < 8:
        return False
    return len(terms) >= 4 or not sentence.rstrip(_CLOSERS).endswith(_QUESTION_END)


def same_statement(a: str, b: str, ratio: float) -> bool:
    return fuzz.token_sort_ratio(a, b, processor=default_process) >= ratio


def fit_budget(texts: list[str], budget: int) -> list[str]:
    """Truncate the longest texts first so the total stays within ``budget`` characters."""
    total = sum(len(t) for t in texts)
    if total <= budget:
        return texts
    # Find the per-text cap c with sum(min(len, c)) <= budget ("water filling"), so short texts
    # are kept whole and every text still contributes its opening words.
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
    # Very many texts: each keeps at least its opening words, and the texts past the budget are
    # left out, so the budget is a bound, never exceeded.
    cap = max(cap, 20)
    kept: list[str] = []
    for text in texts:
        piece = text if len(text) <= cap else _cut(text, cap)
        budget -= len(piece)
        if budget < 0:
            break
        kept.append(piece)
    return kept


def excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else _cut(text, limit - 1).rstrip() + "…"


def yake_corpus(texts: list[str], limit: int) -> str:
    """The texts as one document for YAKE of at most ``limit`` characters: long runs broken up and
    each text ended as a sentence (the full stops and breaks added count too: the limit is a hard
    bound)."""
    return " ".join(_as_sentence(_LONG_RUN.sub(_break_run, t)) for t in texts)[:limit]


def _break_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return " ".join(run[i : i + 64] for i in range(0, len(run), 64))


def _as_sentence(text: str) -> str:
    # YAKE joins lines with spaces; ending each sentence with a full stop keeps keyphrases from
    # spanning two of them.
    return text if text.endswith(_SENTENCE_END) else text + "."


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a space when one is reasonably close."""
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space >= limit * 2 // 3 else cut

