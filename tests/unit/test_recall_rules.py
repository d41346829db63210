"""Recall's rules that need no database: which ranked memories are handed to the caller."""

from __future__ import annotations

from typing import Any

from shared.memories.service import without_repeats

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
    assert [r["id"] for r in without_repeats(ranked, 10)] == [1, 4, 6]


def test_recall_keeps_a_memory_whose_turn_says_more_than_the_better_one_quotes() -> None:
    turn = f"Hi all! {GRACE} The wifi password changed to swordfish."
    ranked = [_row(1, [3], f"yusuf: {GRACE}"), _row(2, [3], turn)]
    assert [r["id"] for r in without_repeats(ranked, 10)] == [1, 2]


def test_recall_keeps_a_memory_whose_turns_the_better_one_does_not_all_cite() -> None:
    ranked = [_row(1, [3], f"{GRACE} {PEANUTS}"), _row(2, [3, 4], PEANUTS)]
    assert [r["id"] for r in without_repeats(ranked, 10)] == [1, 2]


def test_recall_compares_within_one_session_and_generation_only() -> None:
    ranked = [_row(1, [3], GRACE), _row(2, [3], GRACE, session_id=8), _row(3, [3], GRACE, generation=2),
              _row(4, [3], GRACE)]
    assert [r["id"] for r in without_repeats(ranked, 10)] == [1, 2, 3]


def test_recall_keeps_memories_of_purged_sessions_and_memories_citing_nothing() -> None:
    ranked = [_row(1, [3], GRACE, session_id=None), _row(2, [3], GRACE, session_id=None),
              _row(3, [], GRACE), _row(4, [], GRACE)]
    assert [r["id"] for r in without_repeats(ranked, 10)] == [1, 2, 3, 4]


def test_recall_stops_at_the_limit() -> None:
    ranked = [_row(i, [i], f"fact {i}") for i in range(1, 6)]
    assert [r["id"] for r in without_repeats(ranked, 3)] == [1, 2, 3]
