"""The generated recall set is deterministic and fair, and evidence recall counts what it should."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bench.recall_reference import evidence_recall, report
from bench.recall_set import KINDS, Conversation, RecallSet, Turn, build, build_with_history, visible

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SMALL = {"sessions": 6, "turns_per_session": 40}


@pytest.fixture(scope="module")
def default_set() -> RecallSet:
    return build()


def _turns(rs: RecallSet) -> dict[tuple[str, int], tuple[Conversation, Turn]]:
    return {(c.session, seq): (c, t) for c in rs.conversations for seq, t in enumerate(c.turns, start=1)}


def test_the_same_seed_gives_the_same_set(default_set: RecallSet) -> None:
    assert build() == default_set
    assert build(3, **SMALL) == build(3, **SMALL)
    assert build(4, **SMALL) != build(3, **SMALL)


def test_the_default_set_is_large_and_balanced(default_set: RecallSet) -> None:
    assert len(default_set.conversations) == 12
    assert all(len(c.turns) == 60 for c in default_set.conversations)
    assert len(default_set.questions) >= 150
    counts = {kind: sum(q.kind == kind for q in default_set.questions) for kind in KINDS}
    assert min(counts.values()) >= 25, counts


@pytest.mark.parametrize("seed", [7, 1, 2])
def test_every_kind_is_present_and_no_other(seed: int) -> None:
    rs = build(seed, **SMALL) if seed != 7 else build()
    assert {q.kind for q in rs.questions} == set(KINDS)


@pytest.mark.parametrize("seed", [7, 5])
def test_every_evidence_is_an_existing_turn_the_agent_sees(seed: int) -> None:
    rs = build(seed)
    turns = _turns(rs)
    for q in rs.questions:
        assert q.evidence and len(set(q.evidence)) == len(q.evidence)
        for key in q.evidence:
            assert key in turns, (q, key)
            conversation, turn = turns[key]
            assert visible(turn, q.agent, conversation), (q, key)


def test_multi_session_questions_cite_two_sessions(default_set: RecallSet) -> None:
    for q in default_set.questions:
        if q.kind == "multi-session":
            assert len({session for session, _ in q.evidence}) >= 2, q


def test_changed_over_time_questions_cite_only_the_latest_value() -> None:
    rs, history = build_with_history()
    turns = _turns(rs)
    changed = [i for i, q in enumerate(rs.questions) if q.kind == "changed-over-time"]
    assert changed and set(history) == set(changed)
    for i in changed:
        values = history[i]
        assert len(values) >= 2
        assert rs.questions[i].evidence == (values[-1],)
        times = [turns[key][1].occurred_at for key in values]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert len({session for session, _ in values}) == len(values), "each value is stated in its own session"


def test_long_ago_facts_come_from_the_first_sessions(default_set: RecallSet) -> None:
    first = {c.session for c in default_set.conversations[:3]}
    for q in default_set.questions:
        if q.kind == "long-ago":
            assert {session for session, _ in q.evidence} <= first


def test_sessions_and_agents_are_slugs(default_set: RecallSet) -> None:
    names = [c.session for c in default_set.conversations]
    assert len(set(names)) == len(names)
    for c in default_set.conversations:
        assert SLUG.match(c.session)
        assert c.participants and all(SLUG.match(a) for a in c.participants)
        for t in c.turns:
            assert t.content and t.speaker
            assert t.visible_to is None or set(t.visible_to) <= set(c.participants)
    assert all(SLUG.match(q.agent) for q in default_set.questions)


def test_some_turns_are_private_and_their_questions_go_to_their_reader(default_set: RecallSet) -> None:
    turns = _turns(default_set)
    private = [q for q in default_set.questions if any(turns[k][1].visible_to for k in q.evidence)]
    assert private
    for q in private:
        for key in q.evidence:
            visible_to = turns[key][1].visible_to
            assert visible_to is None or visible_to == (q.agent,)


def test_time_moves_forward_over_weeks(default_set: RecallSet) -> None:
    times = [t.occurred_at for c in default_set.conversations for t in c.turns]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(t.tzinfo is not None for t in times)
    assert times[-1] - times[0] >= timedelta(weeks=4)


def test_evidence_recall_counts_evidence_in_the_top_k() -> None:
    ranked = [("a", 3), ("b", 1), ("a", 1), ("c", 9)]
    assert evidence_recall(ranked, [("a", 1)], 2) == 0.0
    assert evidence_recall(ranked, [("a", 1)], 3) == 1.0
    assert evidence_recall(ranked, [("a", 1), ("c", 9)], 3) == 0.5
    assert evidence_recall(ranked, [("a", 1), ("c", 9)], 10) == 1.0
    assert evidence_recall([], [("a", 1)], 5) == 0.0
    with pytest.raises(ValueError):
        evidence_recall(ranked, [], 5)


def test_report_averages_over_questions_and_kinds(default_set: RecallSet) -> None:
    # A ranking that puts each question's first evidence turn first.
    rankings = {i: [q.evidence[0]] for i, q in enumerate(default_set.questions)}
    figures = report(default_set, rankings)
    assert figures["questions"] == len(default_set.questions)
    assert figures["by_kind"]["single-fact"]["recall@10"] == 1.0
    assert figures["by_kind"]["multi-session"]["recall@5"] == 0.5
    assert 0.5 < figures["recall@5"] == figures["recall@10"] < 1.0


def test_bm25_ranks_only_turns_the_agent_sees() -> None:
    from bench.recall_reference import bm25_rankings

    rs = build(3, **SMALL)
    turns = _turns(rs)
    rankings = bm25_rankings(rs, limit=10)
    assert set(rankings) == set(range(len(rs.questions)))
    for i, ranked in rankings.items():
        assert len(ranked) <= 10 and len(set(ranked)) == len(ranked)
        assert all(visible(turns[key][1], rs.questions[i].agent, turns[key][0]) for key in ranked)
    figures = report(rs, rankings)
    assert 0.0 < figures["recall@5"] <= figures["recall@10"] < 1.0
