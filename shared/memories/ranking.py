"""Recall's rules that need no database (DESIGN.md section 2, Recall): which of a query's terms bring
in the full-text candidates. The SQL that scores them is in repository.py."""

from __future__ import annotations

from collections.abc import Sequence

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
