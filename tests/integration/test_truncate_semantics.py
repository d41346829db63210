"""DESIGN.md section 2, **Truncate**: each sentence, a test named after it.

- "bump the session's generation, delete its turns, reset data to {}"
    -> test_truncate_bumps_generation_and_resets_session
- "delete the participants' insights" -> test_truncate_deletes_insights
- "reset last_integration_turn to 0 and the turn counter to 0"
    -> test_truncate_resets_watermarks_and_turn_counter
- "Participants stay bound" -> test_truncate_keeps_participants_bound
- "agents' long-term memories stay (they belong to the agent)" -> test_truncate_keeps_agents_memories
- "An integration that started before a truncate commits nothing after it"
    -> test_integration_started_before_truncate_commits_nothing_after_it (the truncate commits
       while the integration still holds its run: the generation fences it),
       test_integration_that_lost_its_run_to_a_truncate_commits_nothing (the truncate ran as the
       next job once the integration's run was lost: its token fences it)

The API runs in-process over HTTP on the run's PostgreSQL and Redis; jobs run as the worker's
task runs them (``run_job``, ``reconcile_once``), without eager Celery. The integrator is
``echo_integrator``: one insight per turn, carrying the turn's content.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.config import Settings
from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from tests.integration import echo_integrator as echo
from tests.integration import sql
from tests.integration.conftest import World
from tests.integration.test_integrate_semantics import (
    LINES,
    WORKER,
    echo_settings,
    insights,
    job,
    memories,
    participants,
    run,
)
from worker.reconciler import reconcile_once

__all__ = ["echo_settings"]  # the fixture, used by name below


def session_json(world: World, session: str) -> dict[str, Any]:
    body: dict[str, Any] = world.get(f"/sessions/{session}").json()
    return body


def integrated_session(world: World, settings: Settings, *agents: str) -> str:
    """A session with data, three turns, and its participants' insights and memories."""
    name = world.session(data={"topic": "billing", "nested": {"a": 1}})
    for a in agents:
        world.bind(name, world.agent(a, f"{a} is an agent"))
    for line in LINES[:3]:
        world.say(name, "user", line)
    run(world, settings, name, "integrate")
    return name


def test_truncate_bumps_generation_and_resets_session(world: World, echo_settings: Settings) -> None:
    name = integrated_session(world, echo_settings, "ada")
    before = session_json(world, name)
    assert (before["generation"], before["turn_count"], before["data"]) == (1, 3, {"topic": "billing", "nested": {"a": 1}})

    done = run(world, echo_settings, name, "truncate")
    assert done["result"] == {"turns_deleted": 3, "generation": 2}
    after = session_json(world, name)
    assert (after["generation"], after["turn_count"], after["data"]) == (2, 0, {})
    assert world.get(f"/sessions/{name}/turns").json()["items"] == []
    # The session itself is kept: same name, description and creation.
    assert (after["name"], after["description"], after["created_at"]) == (
        before["name"], before["description"], before["created_at"])


def test_truncate_resets_watermarks_and_turn_counter(world: World, echo_settings: Settings) -> None:
    name = integrated_session(world, echo_settings, "ada", "bob")
    assert {n: p["last_integration_turn"] for n, p in participants(world, name).items()} == {"ada": 3, "bob": 3}
    run(world, echo_settings, name, "truncate")
    assert {n: (p["last_integration_turn"], p["pending_turns"]) for n, p in participants(world, name).items()} == {
        "ada": (0, 0), "bob": (0, 0)}
    # The numbering restarts: the next turn is seq 1 again, and the next integration takes it.
    assert world.say(name, "user", LINES[3]) == 1
    assert session_json(world, name)["turn_count"] == 1
    echo.given.clear()
    result = run(world, echo_settings, name, "integrate")["result"]
    assert sorted(echo.given) == [("ada", [1]), ("bob", [1])]
    assert [(p["name"], p["turns_integrated"], p["watermark"]) for p in result["participants"]] == [
        ("ada", 1, 1), ("bob", 1, 1)]


def test_truncate_deletes_insights(world: World, echo_settings: Settings) -> None:
    name = integrated_session(world, echo_settings, "ada", "bob")
    elsewhere = world.session()  # ada's insights in another session are not this session's to delete
    world.bind(elsewhere, "ada")
    world.say(elsewhere, "user", LINES[3])
    run(world, echo_settings, elsewhere, "integrate")
    assert [len(insights(world, name, a)) for a in ("ada", "bob")] == [3, 3]

    run(world, echo_settings, name, "truncate")
    assert insights(world, name, "ada") == []
    assert insights(world, name, "bob") == []
    assert [i["content"] for i in insights(world, elsewhere, "ada")] == [LINES[3]]


def test_truncate_keeps_participants_bound(world: World, echo_settings: Settings) -> None:
    name = world.session()
    world.bind(name, world.agent("ada"))
    world.say(name, "user", LINES[0])
    world.bind(name, world.agent("bob"))  # bound late: sees only what follows
    world.say(name, "user", LINES[1])
    bound = {n: p["bound_at"] for n, p in participants(world, name).items()}

    run(world, echo_settings, name, "truncate")
    assert session_json(world, name)["participants"] == ["ada", "bob"]
    assert {n: p["bound_at"] for n, p in participants(world, name).items()} == bound
    # Both are bound for the whole new conversation: each sees its first turn.
    world.say(name, "user", LINES[2])
    assert {n: p["pending_turns"] for n, p in participants(world, name).items()} == {"ada": 1, "bob": 1}
    for agent in ("ada", "bob"):
        seen = world.get(f"/sessions/{name}/turns", params={"participant": agent}).json()["items"]
        assert [(t["seq"], t["content"]) for t in seen] == [(1, LINES[2])]


def test_truncate_keeps_agents_memories(world: World, echo_settings: Settings) -> None:
    name = integrated_session(world, echo_settings, "ada", "bob")
    before = {a: memories(world, a) for a in ("ada", "bob")}
    assert {a: sorted(m["content"] for m in ms) for a, ms in before.items()} == {
        "ada": sorted(LINES[:3]), "bob": sorted(LINES[:3])}

    run(world, echo_settings, name, "truncate")
    assert {a: memories(world, a) for a in ("ada", "bob")} == before
    # Remembered facts are still near-duplicates after the truncate: saying one again adds no memory.
    world.say(name, "user", LINES[0])
    entry = run(world, echo_settings, name, "integrate")["result"]["participants"][0]
    assert (entry["insights_created"], entry["memories_created"]) == (1, 0)
    after = memories(world, "ada")
    assert [(m["id"], m["content"]) for m in after] == [(m["id"], m["content"]) for m in before["ada"]]
    assert [m["reinforcements"] for m in after if m["content"] == LINES[0]] == [1]  # seen again


def integration_in_flight(world: World, settings: Settings, *agents: str) -> tuple[str, str, threading.Thread, list[str]]:
    """A session with three turns whose integration has claimed its job and is reflecting, held
    there until ``echo.release`` is set. Returns (session, job id, the run's thread, its outcome)."""
    name = world.session()
    for a in agents:
        world.bind(name, world.agent(a))
    for line in LINES[:3]:
        world.say(name, "user", line)
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    echo.hold.set()
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(run_job(job_id, settings, WORKER)))
    t.start()
    assert echo.entered.wait(10)
    return name, job_id, t, outcome


def assert_nothing_integrated(world: World, name: str, *agents: str) -> None:
    for a in agents:
        assert insights(world, name, a) == []
        assert memories(world, a) == []
    # The watermarks stay at the new generation's start; the turn said after the truncate waits.
    assert {n: (p["last_integration_turn"], p["pending_turns"]) for n, p in participants(world, name).items()} == {
        a: (0, 1) for a in agents}


def test_integration_started_before_truncate_commits_nothing_after_it(world: World, echo_settings: Settings) -> None:
    from shared.namespaces import service as namespaces
    from shared.sessions import repository as sessions_repo

    name, job_id, t, outcome = integration_in_flight(world, echo_settings, "ada", "bob")
    with unit_of_work(echo_settings) as db:  # a truncate commits while the run reflects
        session = sessions_repo.get(db, namespaces.get(db, world.ns).id, name, lock=True)
        assert session is not None
        assert sessions_repo.truncate(db, session.id) == (3, 2)
    assert world.say(name, "user", LINES[3]) == 1
    echo.release.set()
    t.join(15)

    assert outcome == ["superseded"]  # the run's outcome; the job itself failed:
    assert sorted(echo.given) == [("ada", [1, 2, 3]), ("bob", [1, 2, 3])]  # it did reflect, on the old turns
    failed = job(world, job_id)
    assert failed["status"] == "failed" and failed["result"] is None
    assert (failed["error"]["status"], failed["error"]["title"]) == (409, "The session was truncated during the run")
    assert_nothing_integrated(world, name, "ada", "bob")


def test_integration_that_lost_its_run_to_a_truncate_commits_nothing(world: World, echo_settings: Settings) -> None:
    # A long lease keeps the run's own heartbeat quiet while the test expires the lease by hand;
    # one attempt makes the reconciler fail the job, so the truncate queued behind it runs.
    settings = echo_settings.model_copy(update={"job_lease_seconds": 60.0, "job_max_attempts": 1})
    name, job_id, t, outcome = integration_in_flight(world, settings, "ada", "bob")
    truncate_id = world.post(f"/sessions/{name}/truncate").json()["id"]
    with unit_of_work(settings) as db:  # the run's worker goes silent past its lease
        sql.run(db, "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %(id)s", {"id": job_id})
    reconcile_once(settings)
    assert job(world, job_id)["status"] == "failed"
    assert run_job(truncate_id, settings, WORKER) == "succeeded"
    assert job(world, truncate_id)["result"] == {"turns_deleted": 3, "generation": 2}
    assert world.say(name, "user", LINES[3]) == 1
    echo.release.set()  # the silent run comes back
    t.join(15)

    assert outcome == ["fenced"]
    assert job(world, job_id)["error"]["title"] == "The job was lost too many times"
    assert_nothing_integrated(world, name, "ada", "bob")
