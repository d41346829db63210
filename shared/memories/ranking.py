"""Recall's rules that need no database (DESIGN.md section 2, Recall): which of a query's terms bring
in the full-text candidates (the SQL that scores them is in repository.py), and which of the ranked
memories are handed to the caller, in which order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rapidfuzz.utils import default_process

from shared.memories.repository import Term


def candidate_terms(terms: Sequence[Term], scored: int) -> list[str]:
    """The query's rarest terms among the agent's memories, rarest first, while their document
    frequencies add up to at most ``scored``; at least the rarest one. The candidates are the memories
    holding one of them, whatever their age; the commoner terms add to their scores but bring in no
    more: a memory holding only common words of the query is outranked by one holding a rarer one.
    A term no memory holds is left out (it matches nothing)."""
    picked: list[str] = []
    reach = 0
    for term in sorted((t for t in terms if t.df > 0), key=lambda t: (t.df, t.lexeme)):
        reach += term.df
        if picked and reach > scored:
            break
        picked.append(term.lexeme)
    return picked


def any_of(lexemes: Sequence[str]) -> str | None:
    """A tsquery (as text) matching any of ``lexemes``, each quoted as tsquery input wants it; None
    for no lexeme."""
    if not lexemes:
        return None
    return " | ".join("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'" for lexeme in lexemes)


def _words(content: str) -> str:
    # Case, punctuation and spacing aside, padded so that containment is of whole words.
    return f" {' '.join(default_process(content).split())} "


def without_repeats(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``rows`` (best first) that each add something: a memory is left out
    when a better one already says it, that is, cites every turn it cites (same session and
    generation) and contains its words (the observation of a turn that a recalled reflection
    quotes whole, a reflection that a profile repeats, a reflection quoting a sentence of a recalled
    observation, which says it with its speaker: "speaker: content"). A memory that cites nothing,
    or whose session is gone (purged: its seqs can no longer be told from another session's), is kept."""
    kept: list[tuple[dict[str, Any], frozenset[int], str]] = []
    for row in rows:
        seqs, words = frozenset(row["evidence"]), _words(row["content"])
        if seqs and row["session_id"] is not None and any(
                row["session_id"] == better["session_id"] and row["generation"] == better["generation"]
                and seqs <= cited and words in said for better, cited, said in kept):
            continue
        speaker = row.get("speaker")
        kept.append((row, seqs, _words(f"{speaker}: {row['content']}") if speaker else words))
    return [row for row, _, _ in kept]


def new_turns_first(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (best first) with the memories that cite a turn no better memory cites before those
    whose turns better memories all cite already, each group in its order: an agent's recall spends its
    places on what it has not been told yet (the integrator's reflections quote and combine the turns
    they cite, and would otherwise fill the first places with one turn said over). A memory that cites
    nothing, or whose session is gone, counts as new."""
    cited: set[tuple[Any, Any, int]] = set()
    new: list[dict[str, Any]] = []
    known: list[dict[str, Any]] = []
    for row in rows:
        turns = {(row["session_id"], row["generation"], seq) for seq in row["evidence"]}
        (known if turns and row["session_id"] is not None and turns <= cited else new).append(row)
        cited |= turns
    return new + known
