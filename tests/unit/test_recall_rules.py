"""Recall's rules that need no database: which terms bring in the full-text candidates, and which
ranked memories are handed to the caller."""

from __future__ import annotations

from typing import Any

from shared.memories.ranking import any_of, candidate_terms, new_turns_first, without_repeats
from shared.memories.repository import Term

GRACE = "Grace works from the Nairobi office."
PEANUTS = "Remember when we order food that Grace is allergic to peanuts."


def _row(mid: int, evidence: list[int], content: str, session_id: int | None = 7, generation: int = 1) -> dict[str, Any]:
    return {"id": mid, "evidence": evidence, "content": content, "session_id": session_id, "generation": generation}


def test_recall_leaves_out_a_memory_that_a_better_one_already_says() -> None:
    profile = f"Grace — yusuf: {GRACE} omar: {PEANUTS}"
    ranked = [_row(1, [3, 5], profile), _row(2, [5], PEANUTS), _row(3, [3], GRACE.upper()), _row(4, [4], "Other."),
              _row(5, [3, 5], f"{GRACE} omar: {PEANUTS}"), _row(6, [3, 5], f"omar: {PEANUTS} yusuf: {GRACE}")]
    # 2, 3 and 5 are said whole by 1 (case and punctuation aside); 4 cites another turn; 6 says the
    # same in another order, which is not taken for a repeat.
    assert [r["id"] for r in without_repeats(ranked)] == [1, 4, 6]


def test_recall_keeps_a_memory_whose_turn_says_more_than_the_better_one_quotes() -> None:
    turn = f"Hi all! {GRACE} The wifi password changed to swordfish."
    ranked = [_row(1, [3], f"yusuf: {GRACE}"), _row(2, [3], turn)]
    assert [r["id"] for r in without_repeats(ranked)] == [1, 2]


def test_recall_keeps_a_memory_whose_turns_the_better_one_does_not_all_cite() -> None:
    ranked = [_row(1, [3], f"{GRACE} {PEANUTS}"), _row(2, [3, 4], PEANUTS)]
    assert [r["id"] for r in without_repeats(ranked)] == [1, 2]


def test_recall_compares_within_one_session_and_generation_only() -> None:
    ranked = [_row(1, [3], GRACE), _row(2, [3], GRACE, session_id=8), _row(3, [3], GRACE, generation=2),
              _row(4, [3], GRACE)]
    assert [r["id"] for r in without_repeats(ranked)] == [1, 2, 3]


def test_recall_keeps_memories_of_purged_sessions_and_memories_citing_nothing() -> None:
    ranked = [_row(1, [3], GRACE, session_id=None), _row(2, [3], GRACE, session_id=None),
              _row(3, [], GRACE), _row(4, [], GRACE)]
    assert [r["id"] for r in without_repeats(ranked)] == [1, 2, 3, 4]


def test_recall_gives_memories_citing_new_turns_before_those_whose_turns_better_ones_cite() -> None:
    ranked = [_row(1, [3], "Zumba on Tuesdays."), _row(2, [3, 5], "Zumba, and the weights."), _row(3, [3], "Zumba."),
              _row(4, [8], "Yoga on Fridays."), _row(5, [], "No turn."), _row(6, [3], "Zumba", session_id=8)]
    # 3 cites only turn 3, which 1 cites: it goes after the others, which each bring a turn not cited before.
    assert [r["id"] for r in new_turns_first(ranked)] == [1, 2, 4, 5, 6, 3]


# --- which terms bring in the full-text candidates (shared.memories.ranking) ---------------------


def test_recall_candidates_are_the_matches_of_the_rarest_terms_within_the_budget() -> None:
    terms = [Term("meet", 900), Term("reykjavik", 2), Term("budget", 40), Term("ghost", 0)]
    assert candidate_terms(terms, 5000) == ["reykjavik", "budget", "meet"]  # all fit: exact BM25
    assert candidate_terms(terms, 100) == ["reykjavik", "budget"]  # "meet" only adds to their scores
    assert candidate_terms(terms, 1) == ["reykjavik"]  # at least the rarest, whatever the budget


def test_recall_candidates_when_every_term_is_common_are_the_rarest_terms_matches() -> None:
    assert candidate_terms([Term("go", 90_000), Term("time", 60_000)], 5000) == ["time"]
    assert candidate_terms([Term("ghost", 0)], 5000) == [] and candidate_terms([], 5000) == []


def test_recall_candidates_query_quotes_each_lexeme() -> None:
    assert any_of([]) is None
    assert any_of(["reykjavik", "o'neil", "a\\b", "x:y|z"]) == "'reykjavik' | 'o''neil' | 'a\\\\b' | 'x:y|z'"
