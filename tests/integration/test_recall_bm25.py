"""DESIGN.md section 2, Recall: full-text relevance is BM25 over the agent's memories, on a stock
PostgreSQL; candidates do not depend on a memory's age; recency breaks ties; `explain` says why; the
statistics follow every write and delete. A test named after each rule, on the run's real
PostgreSQL, memories written by real integrations (``run_job``, as a worker runs them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import bm25s

from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from shared.memories.schemas import RecallRequest
from shared.memories.service import ranked
from tests.integration import sql
from tests.integration.conftest import World

WORKER = "test-worker"
K1, B = 1.2, 0.75

CORPUS = [
    ("grace", "I moved to Lisbon last spring for the billing job, and Lisbon has been lovely."),
    ("omar", "The printer on floor two is out of toner again; I ordered toner from the usual shop."),
    ("lena", "We deploy the billing service every Thursday, unless the Thursday is a holiday."),
    ("grace", "My sister visited me in Lisbon and we walked along the river for hours."),
    ("yusuf", "The standup moved to ten o'clock because half the team is in another time zone."),
    ("omar", "Invoices for customers in Japan were rounded wrongly after the tax change."),
    ("lena", "I adopted a dog named Biscuit; Biscuit hates the vacuum cleaner."),
    ("grace", "The billing service is written in Go and its tests take four minutes."),
    ("yusuf", "Remember that Ines is allergic to peanuts when we order food for the team."),
    ("omar", "I started learning the cello; the cello teacher says my bowing is too stiff."),
    ("lena", "Our retro said the deploy checklist is too long and nobody reads it."),
    ("grace", "I booked a trip to Osaka in October to see the autumn leaves."),
    ("yusuf", "The wifi password on floor two is swordfish, do not share it outside the team."),
    ("omar", "Japan invoices are fixed; the rounding now happens once per invoice, not per line."),
    ("lena", "Biscuit learned to sit and to wait at the door before our walk."),
    ("grace", "For anything urgent about billing, call me rather than writing an email."),
    ("yusuf", "The team offsite will be in Porto; we take the train from Lisbon."),
    ("omar", "My cello recital is on Saturday and I am nervous about the long slow movement."),
    ("lena", "The holiday schedule means no deploy on the Thursday before New Year."),
    ("grace", "Tests of the billing service got faster after we cached the tax tables."),
]
QUERIES = [
    "Which city did Grace move to for the billing job?",
    "when do we deploy billing on Thursday",
    "What is the name of Lena's dog and what did the dog learn?",
    "cello recital nerves",
    "Japan invoices rounding tax",
    "team floor two",
]


def _integrated_agent(world: World, settings: Any, turns: list[dict[str, Any]], agent: str = "ada") -> int:
    name = world.session()
    world.bind(name, world.agent(agent))
    assert world.turns(name, *turns).status_code == 201
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    assert run_job(job_id, settings, WORKER) == "succeeded"
    return _agent_id(world, settings, agent)


def _agent_id(world: World, settings: Any, agent: str) -> int:
    with unit_of_work(settings) as db:
        return int(sql.value(
            db, "SELECT a.id FROM agents a JOIN namespaces n ON n.id = a.namespace_id WHERE n.name = %(ns)s AND a.name = %(a)s",
            {"ns": world.ns, "a": agent}))


def _memories(world: World, agent: str = "ada") -> list[dict[str, Any]]:
    return list(world.get(f"/agents/{agent}/memories", params={"limit": 200}).json()["items"])


def _recall(settings: Any, agent_id: int, query: str, *, scored: int = 5000, reflections: float = 1.0,
            own_words: float = 1.0, **body: Any) -> list[dict[str, Any]]:
    """Recall's ranking (before repeats are left out), as the API computes it; plain BM25 unless
    ``reflections`` weighs the reflections' scores."""
    with unit_of_work(settings) as db:
        return ranked(db, sql.agent(db, agent_id), RecallRequest(query=query, **body), settings.model_copy(update={
            "recall_bm25_k1": K1, "recall_bm25_b": B, "recall_max_scored": scored,
            "recall_weight_reflections": reflections, "recall_weight_own_words": own_words}), limit=10)


def _lexemes(settings: Any, texts: list[str]) -> list[list[str]]:
    """Each text as PostgreSQL's english configuration tokenizes it: its lexemes, each as many times
    as it occurs (stemmed, stopwords left out)."""
    with unit_of_work(settings) as db:
        return [[lexeme for lexeme, tf in sql.rows(
            db, "SELECT lexeme, coalesce(array_length(positions, 1), 1) FROM unnest(to_tsvector('english', %(t)s))",
            {"t": t}) for _ in range(tf)] for t in texts]


def _reference_top(settings: Any, memories: list[dict[str, Any]], query: str, k: int) -> list[tuple[int, float]]:
    """The top ``k`` of ``memories`` for ``query`` by bm25s (Lucene's BM25, our k1 and b), on
    PostgreSQL's lexemes; equal scores ordered like recall's tie-break (most recent first)."""
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(_lexemes(settings, [m["content"] for m in memories]), show_progress=False)
    (words,) = _lexemes(settings, [query])
    scores = retriever.get_scores(sorted(set(words)))
    ranked = sorted(((m["id"], float(s), datetime.fromisoformat(m["occurred_at"]).timestamp())
                     for m, s in zip(memories, scores, strict=True) if s > 0),
                    key=lambda r: (-round(r[1], 4), -r[2], -r[0]))
    return [(mid, score) for mid, score, _ in ranked[:k]]


def _turns(corpus: list[tuple[str, str]], day: int = 1) -> list[dict[str, Any]]:
    return [{"speaker": who, "content": said, "occurred_at": f"2026-03-{day:02d}T09:{i:02d}:00Z"}
            for i, (who, said) in enumerate(corpus)]


# --- ranking -------------------------------------------------------------------------------------


def test_recall_ranks_by_bm25_the_same_top_10_as_a_reference(world: World, settings: Any) -> None:
    agent_id = _integrated_agent(world, settings, _turns(CORPUS))
    remembered = _memories(world)
    assert len(remembered) > len(CORPUS)  # observations, and the integrator's reflections
    for query in QUERIES:
        expected = _reference_top(settings, remembered, query, 10)
        got = [(r["id"], float(r["score"])) for r in _recall(settings, agent_id, query)]
        assert expected, query
        assert [mid for mid, _ in got] == [mid for mid, _ in expected], query
        for (_, mine), (_, theirs) in zip(got, expected, strict=True):
            assert abs(mine - theirs) <= 1e-4 * max(1.0, theirs), (query, got, expected)


def test_recall_weighs_a_reflections_bm25_by_its_setting(world: World, settings: Any) -> None:
    agent_id = _integrated_agent(world, settings, _turns(CORPUS))
    plain = {r["id"]: r for r in _recall(settings, agent_id, "Lisbon billing", kinds=["reflection"], explain=True)}
    assert plain
    for r in _recall(settings, agent_id, "Lisbon billing", kinds=["reflection"], reflections=0.5, explain=True):
        assert abs(r["score"] - plain[r["id"]]["score"] / 2) < 1e-9
        assert abs(sum(r["full_text_terms"].values()) - r["score"]) < 1e-9


def test_recall_weighs_the_agents_own_words_by_its_setting(world: World, settings: Any) -> None:
    turns = [{"speaker": "user", "content": "I moved to Lisbon for the billing job."},
             {"speaker": "ada", "content": "Lisbon is a fine place for a billing job."},
             {"speaker": "user", "content": "The billing team in Lisbon is small."}]
    agent_id = _integrated_agent(world, settings, turns)
    plain = {r["id"]: r for r in _recall(settings, agent_id, "Lisbon billing job", kinds=["observation"])}
    assert {r["speaker"] for r in plain.values()} == {"user", "ada"}
    for r in _recall(settings, agent_id, "Lisbon billing job", kinds=["observation"], own_words=0.5, explain=True):
        factor = 0.5 if r["speaker"] == "ada" else 1.0  # only what the asking agent said itself
        assert abs(r["score"] - plain[r["id"]]["score"] * factor) < 1e-9
        assert abs(sum(r["full_text_terms"].values()) - r["score"]) < 1e-9


def test_recall_weighs_a_rare_word_above_common_ones(world: World, settings: Any) -> None:
    agent_id = _integrated_agent(world, settings, _turns(CORPUS))
    (top, *_) = _recall(settings, agent_id, "what did the team say about Osaka", kinds=["observation"])
    assert "Osaka" in top["content"]  # one memory says Osaka; several say team


def test_recall_recency_breaks_ties_and_never_outweighs_words(world: World, settings: Any) -> None:
    agent_id = _integrated_agent(world, settings, [
        {"speaker": "user", "content": "The parking garage code is 4411.", "occurred_at": "2025-01-01T08:00:00Z"},
        {"speaker": "user", "content": "Lunch was soup again.", "occurred_at": "2026-01-01T08:00:00Z"},
        {"speaker": "user", "content": "The parking garage is closed.", "occurred_at": "2026-02-01T08:00:00Z"},
        {"speaker": "user", "content": "The parking garage is flooded.", "occurred_at": "2026-03-01T08:00:00Z"},
    ])
    items = _recall(settings, agent_id, "parking garage code", kinds=["observation"])
    # The oldest says the rare word of the question: first, however old. The two others score the
    # same: the newer one goes first.
    assert [i["content"] for i in items] == ["The parking garage code is 4411.", "The parking garage is flooded.",
                                             "The parking garage is closed."]
    assert items[1]["score"] == items[2]["score"]


# --- candidates ----------------------------------------------------------------------------------


def _old_memory_behind_newer_matches(world: World, settings: Any) -> int:
    old = {"speaker": "user", "content": "Our meeting in Reykjavik was about the budget.",
           "occurred_at": "2024-01-01T09:00:00Z"}
    newer = [{"speaker": "user", "content": f"Meeting notes number {i}: we talked through item {i} of the agenda "
                                            "and agreed on the next steps for the quarter.",
              "occurred_at": f"2026-01-01T{i // 60 % 24:02d}:{i % 60:02d}:00Z"} for i in range(600)]
    return _integrated_agent(world, settings, [old, *newer])


def test_recall_finds_an_old_memory_behind_more_than_500_newer_matches(world: World, settings: Any) -> None:
    agent_id = _old_memory_behind_newer_matches(world, settings)
    for scored in (5000, 50):  # however few memories a query may score: the rare word brings it in
        items = _recall(settings, agent_id, "the meeting in Reykjavik", scored=scored, kinds=["observation"])
        assert items[0]["content"].startswith("Our meeting in Reykjavik"), scored


def test_recall_when_every_word_is_common_scores_the_shortest_matches_whatever_their_age(
        world: World, settings: Any) -> None:
    agent_id = _old_memory_behind_newer_matches(world, settings)
    items = _recall(settings, agent_id, "meeting", scored=50, kinds=["observation"])
    assert len(items) == 10 and items[0]["content"].startswith("Our meeting in Reykjavik")  # the shortest, the oldest


# --- explain -------------------------------------------------------------------------------------


def test_recall_explain_gives_each_items_rank_and_score_in_each_ranking(world: World, settings: Any) -> None:
    _integrated_agent(world, settings, _turns(CORPUS))
    r = world.post("/agents/ada/recall", json={"query": "Lisbon billing job", "explain": True, "limit": 5})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items
    ranks = [i["explain"]["full_text"]["rank"] for i in items]
    assert ranks == sorted(ranks) and ranks[0] == 1  # leaving out repeats may skip ranks
    for item in items:
        full_text = item["explain"]["full_text"]
        assert full_text["score"] == item["score"]  # full-text mode: ordered by BM25
        assert abs(sum(full_text["terms"].values()) - full_text["score"]) < 1e-4
        assert set(full_text["terms"]) <= {"lisbon", "bill", "job"}
        assert item["explain"]["vector"] is None  # no embedder here
    plain = world.post("/agents/ada/recall", json={"query": "Lisbon billing job", "limit": 5}).json()["items"]
    assert [i["id"] for i in plain] == [i["id"] for i in items] and all(i["explain"] is None for i in plain)


def test_recall_candidates_query_takes_any_lexeme_quotes_and_percent_signs_included(
        world: World, settings: Any) -> None:
    agent_id = _integrated_agent(world, settings, [
        {"speaker": "user", "content": "The runbook is at http://example.com/it's%20here for everyone."},
        {"speaker": "user", "content": "The weather is fine."}])
    (top, *_) = _recall(settings, agent_id, "http://example.com/it's%20here", kinds=["observation"], explain=True)
    assert "runbook" in top["content"] and "example.com/it's%20here" in top["full_text_terms"]
