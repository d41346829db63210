"""Recall's rules that need no database: which ranked memories are handed to the caller."""

from __future__ import annotations

from typing import Any

from shared.memories.service import adding_evidence


def _row(mid: int, evidence: list[int], session: str = "s", generation: int = 1) -> dict[str, Any]:
    return {"id": mid, "evidence": evidence, "session_name": session, "generation": generation}


def test_recall_leaves_out_a_memory_whose_turns_a_better_one_cites() -> None:
    ranked = [_row(1, [3, 5]), _row(2, [5]), _row(3, [3, 5]), _row(4, [4]), _row(5, [3, 4])]
    # 2 and 3 add nothing to 1; 5 is covered by 1 and 4 together but by neither alone: kept.
    assert [r["id"] for r in adding_evidence(ranked, 10)] == [1, 4, 5]


def test_recall_compares_evidence_within_one_session_and_generation_only() -> None:
    ranked = [_row(1, [3]), _row(2, [3], session="t"), _row(3, [3], generation=2), _row(4, [3])]
    assert [r["id"] for r in adding_evidence(ranked, 10)] == [1, 2, 3]


def test_recall_keeps_a_memory_that_cites_nothing_and_stops_at_the_limit() -> None:
    ranked = [_row(1, []), _row(2, []), _row(3, [1]), _row(4, [2]), _row(5, [1])]
    assert [r["id"] for r in adding_evidence(ranked, 3)] == [1, 2, 3]
    assert [r["id"] for r in adding_evidence(ranked, 10)] == [1, 2, 3, 4]
