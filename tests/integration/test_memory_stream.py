"""DESIGN.md section 2: the memory stream (Integrate), Recall, Context and Forgetting, a test
named after each rule. Jobs run as plain functions (``run_job``), the way a worker's task calls
them, on the run's real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from api.main import create_app
from shared.integrators import load_integrator
from shared.jobs import effects, runs
from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import World, unique

WORKER = "test-worker"

GRACE = [
    {"speaker": "user", "content": "My name is Grace and I maintain the billing service written in Go.",
     "occurred_at": "2026-03-01T09:00:00Z"},
    {"speaker": "ada", "content": "Nice to meet you Grace. What is failing in billing?",
     "occurred_at": "2026-03-01T09:00:05Z"},
    {"speaker": "user", "content": "Invoices for customers in Japan are rounded wrongly since the tax change in April.",
     "occurred_at": "2026-03-01T09:01:00Z"},
]


class NoBeat:
    lost = cancel_requested = False

    def checkpoint(self) -> None:
        pass


def integrate(world: World, settings: Any, session: str) -> dict[str, Any]:
    job_id = world.post(f"/sessions/{session}/integrate").json()["id"]
    assert run_job(job_id, settings, WORKER) == "succeeded"
    return dict(world.get(f"/jobs/{job_id}").json())


def grace_session(world: World, *agents: str, turns: list[dict[str, Any]] | None = None) -> str:
    name = world.session()
    for a in agents or ("ada",):
        world.bind(name, world.agent(a))
    assert world.turns(name, *(turns or GRACE)).status_code == 201
    return name


def memories(world: World, agent: str = "ada") -> list[dict[str, Any]]:
    return list(world.get(f"/agents/{agent}/memories", params={"limit": 200}).json()["items"])


def recall(world: World, query: str, agent: str = "ada", **body: Any) -> list[dict[str, Any]]:
    r = world.post(f"/agents/{agent}/recall", json={"query": query, **body})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# --- the memory stream ---------------------------------------------------------------------------


def test_observations_every_new_visible_turn_becomes_an_observation(world: World, settings: Any) -> None:
    name = grace_session(world, "ada", "bob")
    world.turns(name, {"speaker": "user", "content": "A private note for bob about the migration.", "visible_to": ["bob"]})
    integrate(world, settings, name)
    seen = {m["evidence"][0]: m for m in memories(world) if m["kind"] == "observation"}
    assert sorted(seen) == [1, 2, 3]  # not the note to bob
    third = seen[3]
    assert third["speaker"] == "user" and third["content"] == GRACE[2]["content"]
    assert third["session"] == name and third["generation"] == 1
    assert third["occurred_at"].startswith("2026-03-01T09:01:00")
    assert [m["evidence"] for m in memories(world, "bob") if m["kind"] == "observation"] == [[4], [3], [2], [1]]


def test_reflections_the_integrators_insights_enter_the_stream(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)
    insights = world.get(f"/sessions/{name}/participants/ada/insights").json()["items"]
    reflections = [m for m in memories(world) if m["kind"] == "reflection"]
    assert insights and sorted(m["content"] for m in reflections) == sorted(i["content"] for i in insights)
    assert all(m["speaker"] is None and m["evidence"] for m in reflections)


def test_reinforcement_the_same_turn_again_reinforces_its_observation(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)
    before = {m["id"]: m for m in memories(world)}
    world.turns(name, {**GRACE[2], "occurred_at": "2026-03-02T10:00:00Z"})
    job = integrate(world, settings, name)
    after = {m["id"]: m for m in memories(world)}
    assert job["result"]["participants"][0]["turns_integrated"] == 1
    again = [m for m in after.values() if m["content"] == GRACE[2]["content"] and m["kind"] == "observation"]
    assert len(again) == 1 and again[0]["reinforcements"] == 1
    assert again[0]["last_seen_at"] > before[again[0]["id"]]["last_seen_at"]


def test_reinforcement_a_changed_fact_is_a_new_observation(world: World, settings: Any) -> None:
    name = grace_session(world, turns=[{"speaker": "user", "content": "We deploy the billing service on Tuesday."}])
    integrate(world, settings, name)
    world.turns(name, {"speaker": "user", "content": "We deploy the billing service on Thursday."})
    integrate(world, settings, name)
    contents = [m["content"] for m in memories(world) if m["kind"] == "observation"]
    assert sorted(contents) == ["We deploy the billing service on Thursday.", "We deploy the billing service on Tuesday."]


def test_every_memory_has_an_importance(world: World, settings: Any) -> None:
    integrate(world, settings, grace_session(world))
    assert memories(world) and all(1 <= m["importance"] <= 10 for m in memories(world))


def test_turns_accept_occurred_at_with_a_time_zone(world: World) -> None:
    name = grace_session(world)
    listed = world.get(f"/sessions/{name}/turns").json()["items"]
    assert listed[0]["occurred_at"].startswith("2026-03-01T09:00:00")
    naive = world.turns(name, {"speaker": "user", "content": "x", "occurred_at": "2026-03-01T09:00:00"})
    assert naive.status_code == 422 and naive.headers["content-type"] == "application/problem+json"
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 3  # nothing appended


def test_turns_without_occurred_at_happened_when_appended(world: World) -> None:
    name = world.session()
    turn = world.turns(name, {"speaker": "user", "content": "now"}).json()["turns"][0]
    assert turn["occurred_at"] == turn["created_at"]


# --- recall --------------------------------------------------------------------------------------


def test_recall_finds_what_the_agent_remembers_of_the_question(world: World, settings: Any) -> None:
    integrate(world, settings, grace_session(world))
    items = recall(world, "what about the Japan invoices?", limit=3)
    assert items[0]["evidence"] == [3] or 3 in items[0]["evidence"]
    assert "Japan" in items[0]["content"]
    assert items == sorted(items, key=lambda m: -m["score"])


def test_recall_filters_by_session_and_kinds(world: World, settings: Any) -> None:
    first = grace_session(world)
    second = grace_session(world, turns=[{"speaker": "user", "content": "Invoices in Japan still look wrong."}])
    integrate(world, settings, first)
    integrate(world, settings, second)
    assert {m["session"] for m in recall(world, "Japan invoices")} == {first, second}
    assert {m["session"] for m in recall(world, "Japan invoices", session=second)} == {second}
    only = recall(world, "Japan invoices", kinds=["observation"])
    assert only and {m["kind"] for m in only} == {"observation"}
    assert world.post("/agents/ada/recall", json={"query": "x", "kinds": ["dream"]}).status_code == 422


def test_recall_prefers_the_latest_of_a_fact_that_changed(world: World, settings: Any) -> None:
    name = grace_session(world, turns=[
        {"speaker": "user", "content": "The billing deploy day is Tuesday.", "occurred_at": "2026-01-05T10:00:00Z"}])
    integrate(world, settings, name)
    world.turns(name, {"speaker": "user", "content": "The billing deploy day is Thursday now.",
                       "occurred_at": "2026-06-05T10:00:00Z"})
    integrate(world, settings, name)
    items = recall(world, "which day is the billing deploy?", kinds=["observation"])
    assert items[0]["content"] == "The billing deploy day is Thursday now."


def test_recall_leaves_out_a_memory_whose_turns_a_better_one_cites(world: World, settings: Any) -> None:
    name = grace_session(world, turns=[
        {"speaker": "yusuf", "content": "Grace works from the Nairobi office."},
        {"speaker": "omar", "content": "Remember when we order food that Grace is allergic to peanuts."},
        {"speaker": "lena", "content": "For anything quick, Grace likes a phone call best."},
        {"speaker": "omar", "content": "Ines is out sick today, Grace covers the standup."},
    ])
    integrate(world, settings, name)
    remembered = [m for m in memories(world) if "Grace" in m["content"]]
    (profile,) = [m for m in remembered if m["content"].startswith("Grace — ")]
    assert profile["kind"] == "reflection" and profile["evidence"] == [1, 2, 3, 4]
    # Reflections weigh as much as observations here, so that the profile (Grace's name five
    # times) is the better memory of the five; by default a reflection weighs less.
    pinned = settings.model_copy(update={"recall_weight_reflections": 1.0})
    with TestClient(create_app(pinned), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        r = client.post(f"{world.base}/agents/ada/recall", json={"query": "What do we know about Grace?", "limit": 20})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["id"] == profile["id"]
    # The profile says all four turns: their observations, which match too, are left out...
    assert [m["id"] for m in items if m["kind"] == "observation"] == []
    assert profile["id"] in [m["id"] for m in items]
    # ... and nothing is lost: every sentence about Grace is in what recall returns.
    said = " ".join(m["content"] for m in items)
    for turn in ("Grace works from the Nairobi office.", "Grace is allergic to peanuts.",
                 "Grace likes a phone call best.", "Grace covers the standup."):
        assert turn in said


def test_recall_keeps_the_observation_of_a_turn_that_says_more_than_its_reflection(world: World, settings: Any) -> None:
    name = grace_session(world, turns=[
        {"speaker": "yusuf", "content": "Hi all! Grace works from the Nairobi office. Also the wifi password is now "
                                        "swordfish, and the printer on floor two is out of toner."},
        {"speaker": "omar", "content": "Ines is out sick today, so Grace runs the standup."},
    ])
    integrate(world, settings, name)
    items = recall(world, "Grace wifi password", limit=20)
    assert any("swordfish" in m["content"] for m in items), items


def test_recall_strict_query_uses_web_search_syntax(world: World, settings: Any) -> None:
    integrate(world, settings, grace_session(world))
    assert recall(world, '"tax change" -Japan') == []
    assert recall(world, '"tax change"')


def test_recall_namespace_isolation(app: Any, http: TestClient, world: World, settings: Any) -> None:
    integrate(world, settings, grace_session(world))
    other = unique("ns")
    assert http.put(f"/v1/namespaces/{other}", json={}).status_code == 201
    secret = http.post(f"/v1/namespaces/{other}/keys", json={}).json()["secret"]
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as c:
        foreign = c.post(f"/v1/namespaces/{world.ns}/agents/ada/recall", json={"query": "Japan"})
        missing = c.post(f"/v1/namespaces/{unique('ns')}/agents/ada/recall", json={"query": "Japan"})
        assert foreign.status_code == missing.status_code == 404
        assert c.put(f"/v1/namespaces/{other}/agents/ada", json={}).status_code == 201
        own = c.post(f"/v1/namespaces/{other}/agents/ada/recall", json={"query": "Japan"})
        assert own.status_code == 200 and own.json()["items"] == []


# --- context -------------------------------------------------------------------------------------


def test_context_budget_text_fits_max_chars(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)
    world.turns(name, *[{"speaker": "user", "content": f"Filler turn number {i} " + "words " * 30} for i in range(40)])
    for budget in (100, 400, 3000):
        ctx = world.get(f"/sessions/{name}/participants/ada/context",
                        params={"query": "Japan invoices", "max_chars": budget}).json()
        assert len(ctx["text"]) <= budget
    ctx = world.get(f"/sessions/{name}/participants/ada/context", params={"query": "Japan invoices"}).json()
    assert ctx["turns"][-1]["seq"] == 43 and len(ctx["turns"]) == 20
    assert "Japan" in ctx["memories"][0]["content"] and ctx["insights"]
    assert "#43 user: Filler turn number 39" in ctx["text"] and "Japan" in ctx["text"]


def test_context_default_query_is_the_latest_turns(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)
    world.turns(name, {"speaker": "user", "content": "Back to the Japan rounding problem."})
    ctx = world.get(f"/sessions/{name}/participants/ada/context").json()
    assert "Japan" in ctx["query"] and any("Japan" in m["content"] for m in ctx["memories"])


def test_context_of_an_agent_that_is_not_a_participant_is_404(world: World) -> None:
    name = grace_session(world)
    world.agent("eve")
    r = world.get(f"/sessions/{name}/participants/eve/context")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


# --- forgetting ----------------------------------------------------------------------------------


def test_forget_deletes_one_memory(world: World, settings: Any) -> None:
    integrate(world, settings, grace_session(world))
    first, *rest = memories(world)
    assert world.http.delete(f"{world.base}/agents/ada/memories/{first['id']}").status_code == 204
    assert [m["id"] for m in memories(world)] == [m["id"] for m in rest]
    assert world.http.delete(f"{world.base}/agents/ada/memories/{first['id']}").status_code == 404


def test_redaction_cascade_erases_the_turn_and_what_cites_it(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)
    insights_url = f"/sessions/{name}/participants/ada/insights"
    seq = world.get(insights_url).json()["items"][0]["evidence"][0]  # a turn an insight rests on
    citing = [m["id"] for m in memories(world) if seq in m["evidence"]]
    citing_insights = [i for i in world.get(insights_url).json()["items"] if seq in i["evidence"]]
    assert len(citing) >= 2  # its observation and a reflection
    r = world.http.delete(f"{world.base}/sessions/{name}/turns/{seq}")
    assert r.status_code == 200, r.text
    assert r.json()["memories_deleted"] == len(citing) and r.json()["insights_deleted"] == len(citing_insights)
    turn = world.get(f"/sessions/{name}/turns").json()["items"][seq - 1]
    assert turn["content"] == "" and turn["redacted_at"] is not None
    assert not any(seq in m["evidence"] for m in memories(world))
    assert not any(seq in i["evidence"] for i in world.get(insights_url).json()["items"])
    assert {m["evidence"][0] for m in memories(world) if m["kind"] == "observation"} == {1, 2, 3} - {seq}
    again = world.http.delete(f"{world.base}/sessions/{name}/turns/{seq}").json()
    assert again["memories_deleted"] == again["insights_deleted"] == 0
    assert world.http.delete(f"{world.base}/sessions/{name}/turns/99").status_code == 404


def test_redaction_integrations_skip_redacted_turns(world: World, settings: Any) -> None:
    name = grace_session(world)
    assert world.http.delete(f"{world.base}/sessions/{name}/turns/3").status_code == 200
    integrate(world, settings, name)
    assert {m["evidence"][0] for m in memories(world) if m["kind"] == "observation"} == {1, 2}
    assert not any(3 in m["evidence"] for m in memories(world))


def test_redaction_of_a_deleted_session_is_409(world: World) -> None:
    name = grace_session(world)
    assert world.http.delete(f"{world.base}/sessions/{name}").status_code == 200
    assert world.http.delete(f"{world.base}/sessions/{name}/turns/1").status_code == 409


def test_fencing_of_the_new_writes_a_turn_redacted_during_a_run_is_not_remembered(world: World, settings: Any) -> None:
    name = grace_session(world)
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    claim = effects.claim_integration(settings, job_id, WORKER, timedelta(seconds=30))
    run, plans = claim.run, claim.plans
    assert run is not None
    assert world.http.delete(f"{world.base}/sessions/{name}/turns/3").status_code == 200  # while it reflects
    effects.integrate(run, settings, load_integrator(settings), NoBeat(), plans)
    assert memories(world) and not any(3 in m["evidence"] for m in memories(world))


GRACE_BEFORE = [{"speaker": "yusuf", "content": "Grace works from the Nairobi office."},
                {"speaker": "omar", "content": "The printer on floor two is out of toner again."}]
GRACE_AFTER = [{"speaker": "lena", "content": "For anything quick, Grace likes a phone call best."},
               {"speaker": "omar", "content": "Ines is out sick today, so Grace runs the standup."}]


def _claimed_second_integration(world: World, settings: Any) -> tuple[str, effects.Claim]:
    name = grace_session(world, turns=GRACE_BEFORE)
    integrate(world, settings, name)
    assert world.turns(name, *GRACE_AFTER).status_code == 201
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    claim = effects.claim_integration(settings, job_id, WORKER, timedelta(seconds=30))
    assert claim.run is not None
    return name, claim


def test_profiles_draw_on_the_turns_integrated_before(world: World, settings: Any) -> None:
    _, claim = _claimed_second_integration(world, settings)
    (plan,) = claim.plans
    assert [t.seq for t in plan.earlier] == [1, 2] and [t.seq for t in plan.turns] == [3, 4]
    assert claim.run is not None
    effects.integrate(claim.run, settings, load_integrator(settings), NoBeat(), claim.plans)
    (profile,) = [m for m in memories(world) if m["content"].startswith("Grace — ")]
    assert profile["evidence"] == [1, 3, 4]
    assert "Grace works from the Nairobi office." in profile["content"]


def test_fencing_of_the_new_writes_an_earlier_turn_redacted_during_a_run_is_not_cited(
        world: World, settings: Any) -> None:
    name, claim = _claimed_second_integration(world, settings)
    assert world.http.delete(f"{world.base}/sessions/{name}/turns/1").status_code == 200  # while it reflects
    assert claim.run is not None
    effects.integrate(claim.run, settings, load_integrator(settings), NoBeat(), claim.plans)
    remembered = memories(world)
    assert {s for m in remembered for s in m["evidence"]} >= {3, 4}
    assert not any(1 in m["evidence"] for m in remembered), remembered


def test_fencing_of_the_new_writes_a_stale_run_writes_no_memory(world: World, settings: Any) -> None:
    name = grace_session(world)
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    claim = effects.claim_integration(settings, job_id, "slow-worker", timedelta(seconds=30))
    stale, plans = claim.run, claim.plans
    assert stale is not None
    with unit_of_work(settings) as db:  # the run's token is taken away (lease expired, re-queued)
        runs.requeue(db, job_id, {"detail": "lease expired"})
    try:
        effects.integrate(stale, settings, load_integrator(settings), NoBeat(), plans)
    except effects.Fenced:
        pass
    else:
        raise AssertionError("a stale run must be fenced")
    assert memories(world) == []


def test_deleting_an_agent_deletes_its_memories(world: World, settings: Any) -> None:
    integrate(world, settings, grace_session(world))
    assert memories(world)
    assert world.http.delete(f"{world.base}/agents/ada").status_code == 204
    world.agent("ada")
    assert memories(world) == []


def test_readyz_says_how_recall_ranks(http: TestClient) -> None:
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready" and ready["recall"] == "full-text"  # no embedder configured here
