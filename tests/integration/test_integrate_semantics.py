"""DESIGN.md section 2, **Integrate** (with **Turns** visibility): each sentence, a test named after it.

- "for each participant bound when the job starts"
    -> test_integrate_covers_the_participants_bound_when_the_job_starts
- "take its visible turns" / "A participant sees the turns appended while it is bound and that
  are visible to it" -> test_integrate_sees_only_visible_turns
- "with last_integration_turn < seq ≤ snapshot (snapshot = the session's last seq when the job
  starts)" -> test_integrate_takes_turns_after_watermark_up_to_snapshot,
  test_integrate_turns_appended_after_snapshot_wait_for_next_run
- "the integrator reflects on them and its insights {content, importance 1–10, evidence} are
  stored for the participant" -> test_integrate_stores_the_integrators_insights_for_the_participant
- "a near-duplicate of a recent memory reinforces it instead of repeating it"
    -> test_integrate_near_duplicate_does_not_repeat_memory
- "All of a participant's writes, and the move of last_integration_turn to the snapshot, are one
  transaction per participant" -> test_integrate_one_transaction_per_participant
- "Re-running with nothing new is a no-op" -> test_integrate_rerun_with_nothing_new_is_noop
- "The result lists, per participant, turns integrated, insights and memories created, and the
  new watermark" -> test_integrate_result_lists_each_participant

The API runs in-process over HTTP on the run's PostgreSQL and Redis; a job runs as the worker's
task runs it (``run_job``), without eager Celery. The integrator is ``echo_integrator``: one
insight per turn, carrying the turn's content, so every count and content below is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.config import Settings
from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from tests.integration import echo_integrator as echo
from tests.integration import sql
from tests.integration.conftest import World

WORKER = "semantics-worker"

# Sentences far apart (token-set ratio below 50 for every pair), so no two are near-duplicates.
LINES = [
    "Invoices in Japan are rounded down since the consumption tax change.",
    "Maria prefers meetings before noon on Tuesdays.",
    "The staging cluster runs out of disk every Friday night.",
    "Our largest customer renews its contract in March.",
    "Deploys freeze during the last week of December.",
    "Paolo owns the mobile checkout redesign.",
    "Legal asked us to keep audit logs seven years.",
]
# The first fact said again with a few more words: a near-duplicate of it (token-set ratio >= 90).
NEAR_LINE_0 = "Invoices in Japan are rounded down since the consumption tax change, as agreed."


@pytest.fixture
def echo_settings(settings: Settings) -> Iterator[Settings]:
    echo.reset()
    yield settings.model_copy(update={"integrator": echo.PATH})
    echo.release.set()  # never leave a run of a failed test waiting
    echo.reset()


def run(world: World, settings: Settings, session: str, kind: str) -> dict[str, Any]:
    """Start an integrate or a truncate and run it as a worker would; the finished job."""
    r = world.post(f"/sessions/{session}/{kind}")
    assert r.status_code == 202, r.text
    assert run_job(r.json()["id"], settings, WORKER) == "succeeded"
    return job(world, r.json()["id"])


def integrate(world: World, settings: Settings, session: str) -> dict[str, Any]:
    """Integrate the session as a worker would, and return the finished job."""
    return run(world, settings, session, "integrate")


def job(world: World, job_id: str) -> dict[str, Any]:
    r = world.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def participants(world: World, session: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in world.get(f"/sessions/{session}/participants").json()["items"]}


def insights(world: World, session: str, agent: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = world.get(f"/sessions/{session}/participants/{agent}/insights").json()["items"]
    return items


def memories(world: World, agent: str) -> list[dict[str, Any]]:
    """The agent's reflections: what its insights became in its memory stream (each turn also
    becomes an observation; tests/integration/test_memory_stream.py covers those)."""
    items: list[dict[str, Any]] = world.get(f"/agents/{agent}/memories", params={"limit": 200}).json()["items"]
    return [m for m in items if m["kind"] == "reflection"]


def contents(items: list[dict[str, Any]]) -> list[str]:
    return [i["content"] for i in items]


def session_with(world: World, *agents: str, lines: int = 0) -> str:
    name = world.session()
    for a in agents:
        world.bind(name, world.agent(a, f"{a} is an agent"))
    for line in LINES[:lines]:
        world.say(name, "user", line)
    return name


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_integrate_takes_turns_after_watermark_up_to_snapshot(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", lines=3)
    first = integrate(world, echo_settings, name)
    assert echo.given == [("ada", [1, 2, 3])]
    assert first["result"]["participants"][0]["watermark"] == 3
    assert participants(world, name)["ada"]["last_integration_turn"] == 3

    for line in LINES[3:5]:
        world.say(name, "user", line)
    second = integrate(world, echo_settings, name)
    # Only what lies above the watermark: turns 1-3 are not given again.
    assert echo.given == [("ada", [1, 2, 3]), ("ada", [4, 5])]
    assert second["result"]["participants"][0]["turns_integrated"] == 2
    assert second["result"]["participants"][0]["watermark"] == 5
    assert contents(insights(world, name, "ada")) == LINES[:5]


def test_integrate_turns_appended_after_snapshot_wait_for_next_run(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", lines=3)
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    echo.hold.set()
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(run_job(job_id, echo_settings, WORKER)))
    t.start()
    assert echo.entered.wait(10)  # claimed (snapshot taken) and reflecting
    late = world.say(name, "user", LINES[3])
    assert late == 4
    echo.release.set()
    t.join(15)
    assert outcome == ["succeeded"]
    entry = job(world, job_id)["result"]["participants"][0]
    assert (entry["turns_integrated"], entry["watermark"]) == (3, 3)
    assert contents(insights(world, name, "ada")) == LINES[:3]
    ada = participants(world, name)["ada"]
    assert (ada["last_integration_turn"], ada["pending_turns"]) == (3, 1)

    echo.hold.clear()
    nxt = integrate(world, echo_settings, name)["result"]["participants"][0]
    assert echo.given[-1] == ("ada", [4])
    assert (nxt["turns_integrated"], nxt["watermark"]) == (1, 4)
    assert contents(insights(world, name, "ada")) == LINES[:4]


def test_integrate_sees_only_visible_turns(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", "bob", "cy")
    world.say(name, "user", LINES[0])  # 1: everyone bound so far
    world.say(name, "cy", LINES[1], visible_to=["ada"])  # 2: ada, and cy who said it
    world.bind(name, world.agent("dan"))
    world.say(name, "user", LINES[2], visible_to=["bob"])  # 3: bob only
    world.say(name, "user", LINES[3])  # 4: everyone, dan included
    result = integrate(world, echo_settings, name)["result"]
    assert sorted(echo.given) == [("ada", [1, 2, 4]), ("bob", [1, 3, 4]), ("cy", [1, 2, 4]), ("dan", [4])]
    assert {p["name"]: p["turns_integrated"] for p in result["participants"]} == {"ada": 3, "bob": 3, "cy": 3, "dan": 1}
    assert contents(insights(world, name, "ada")) == [LINES[0], LINES[1], LINES[3]]
    assert contents(insights(world, name, "bob")) == [LINES[0], LINES[2], LINES[3]]
    assert contents(insights(world, name, "dan")) == [LINES[3]]
    # A turn a participant does not see still moves its watermark: it will never see it.
    assert {p["name"]: p["last_integration_turn"] for p in participants(world, name).values()} == {
        "ada": 4, "bob": 4, "cy": 4, "dan": 4}


def test_integrate_covers_the_participants_bound_when_the_job_starts(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", "cy", lines=1)
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    # After the job was accepted, before it starts: bob joins, cy leaves.
    world.bind(name, world.agent("bob"))
    assert world.http.delete(f"{world.base}/sessions/{name}/participants/cy").status_code == 204
    world.say(name, "user", LINES[1])
    assert run_job(job_id, echo_settings, WORKER) == "succeeded"
    assert sorted(echo.given) == [("ada", [1, 2]), ("bob", [2])]
    assert [p["name"] for p in job(world, job_id)["result"]["participants"]] == ["ada", "bob"]
    assert contents(insights(world, name, "bob")) == [LINES[1]]
    assert memories(world, "cy") == []


def test_integrate_stores_the_integrators_insights_for_the_participant(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", "bob", lines=2)
    job_id = integrate(world, echo_settings, name)["id"]
    for agent in ("ada", "bob"):
        got = insights(world, name, agent)
        assert [(i["content"], i["importance"], i["evidence"]) for i in got] == [
            (LINES[0], echo.importance(LINES[0]), [1]), (LINES[1], echo.importance(LINES[1]), [2])]
        assert all(i["created_at"] for i in got)
        # Each agent's insights also enter its long-term memory, naming the session.
        assert sorted((m["content"], m["importance"], m["evidence"], m["session"]) for m in memories(world, agent)) == \
            sorted((i["content"], i["importance"], i["evidence"], name) for i in got)
    with unit_of_work(echo_settings) as db:  # and they are traced to the job that drew them
        jobs = [r[0] for r in sql.rows(db, "SELECT DISTINCT job_id FROM insights i JOIN sessions s ON s.id = i.session_id "
                                            "WHERE s.name = %(n)s", {"n": name})]
    assert jobs == [job_id]


def test_integrate_near_duplicate_does_not_repeat_memory(world: World, echo_settings: Settings) -> None:
    first = session_with(world, "ada", lines=2)
    # Two observations and two reflections.
    assert integrate(world, echo_settings, first)["result"]["participants"][0]["memories_created"] == 4

    second = session_with(world, "ada")
    world.say(second, "user", NEAR_LINE_0)
    world.say(second, "user", LINES[2])  # a new one
    entry = integrate(world, echo_settings, second)["result"]["participants"][0]
    # Two new observations; of the reflections only the new fact's (the near-duplicate reinforces).
    assert (entry["insights_created"], entry["memories_created"]) == (2, 3)
    # The session keeps both insights; the agent's memory holds the fact once.
    assert contents(insights(world, second, "ada")) == [NEAR_LINE_0, LINES[2]]
    assert sorted(contents(memories(world, "ada"))) == sorted([LINES[0], LINES[1], LINES[2]])


def test_integrate_rerun_with_nothing_new_is_noop(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", "bob", lines=3)
    integrate(world, echo_settings, name)
    before = (participants(world, name), insights(world, name, "ada"), insights(world, name, "bob"),
              memories(world, "ada"), memories(world, "bob"))
    calls = len(echo.given)

    again = integrate(world, echo_settings, name)
    assert again["result"] == {"participants": [
        {"name": n, "turns_integrated": 0, "insights_created": 0, "memories_created": 0, "watermark": 3}
        for n in ("ada", "bob")]}
    assert len(echo.given) == calls  # the integrator was not even asked
    after = (participants(world, name), insights(world, name, "ada"), insights(world, name, "bob"),
             memories(world, "ada"), memories(world, "bob"))
    assert after == before


def test_integrate_result_lists_each_participant(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", "bob", "cy")
    world.say(name, "user", LINES[0])
    world.say(name, "user", LINES[1], visible_to=["ada"])
    world.say(name, "user", LINES[2], visible_to=["ada", "bob"])
    # cy already remembers one of the facts it will see from another session: no new memory for it.
    other = session_with(world, "cy")
    world.say(other, "user", LINES[0])
    integrate(world, echo_settings, other)

    done = integrate(world, echo_settings, name)
    assert done["result"] == {"participants": [
        {"name": "ada", "turns_integrated": 3, "insights_created": 3, "memories_created": 6, "watermark": 3},
        {"name": "bob", "turns_integrated": 2, "insights_created": 2, "memories_created": 4, "watermark": 3},
        {"name": "cy", "turns_integrated": 1, "insights_created": 1, "memories_created": 0, "watermark": 3},
    ]}
    assert done["progress"] == {"completed": 3, "total": 3}


# Backends waiting on a lock this test holds (pg_locks is read live; pg_stat_activity would be a
# snapshot for the whole transaction).
BLOCKED_BY_ME = "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted AND %(me)s = ANY(pg_blocking_pids(pid))"


def test_integrate_one_transaction_per_participant(world: World, echo_settings: Settings) -> None:
    """ada commits, then bob's transaction dies before its commit: ada's insights, memories and
    watermark stay; none of bob's writes, nor the move of his watermark, are left behind."""
    name = session_with(world, "ada", "bob", lines=3)
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    outcome: list[str] = []
    with unit_of_work(echo_settings) as db:
        # Hold bob's agent row: every write of bob's insights and memories waits for it, inside bob's
        # transaction, after ada's transaction has committed.
        me = sql.value(db, "SELECT pg_backend_pid()")
        sql.rows(db, "SELECT a.id FROM agents a JOIN namespaces n ON n.id = a.namespace_id "
                     "WHERE n.name = %(ns)s AND a.name = 'bob' FOR UPDATE OF a", {"ns": world.ns})
        t = threading.Thread(target=lambda: outcome.append(run_job(job_id, echo_settings, WORKER)))
        t.start()

        def bob_waits() -> bool:
            return bool(sql.value(db, f"SELECT count(*) FROM ({BLOCKED_BY_ME}) b", {"me": me}))

        wait_for(bob_waits, "bob's transaction to wait on his agent row")
        # ada's transaction has committed: the API sees all of it while bob's is still open.
        assert participants(world, name)["ada"]["last_integration_turn"] == 3
        assert contents(insights(world, name, "ada")) == LINES[:3]
        assert sorted(contents(memories(world, "ada"))) == sorted(LINES[:3])
        assert participants(world, name)["bob"]["last_integration_turn"] == 0
        assert insights(world, name, "bob") == []
        progress = job(world, job_id)
        assert progress["status"] == "running" and progress["progress"] == {"completed": 1, "total": 2}
        # bob's transaction fails (its connection dies) before it commits.
        killed = [r[0] for r in sql.rows(db, f"SELECT pg_terminate_backend(pid) FROM ({BLOCKED_BY_ME}) b", {"me": me})]
        assert killed == [True]
        t.join(15)
    assert outcome == ["retrying"]
    assert participants(world, name)["ada"]["last_integration_turn"] == 3
    assert contents(insights(world, name, "ada")) == LINES[:3]
    assert participants(world, name)["bob"]["last_integration_turn"] == 0
    assert participants(world, name)["bob"]["pending_turns"] == 3
    assert insights(world, name, "bob") == []
    assert memories(world, "bob") == []
    retried = job(world, job_id)
    assert retried["status"] == "queued" and retried["error"]["status"] == 500
    assert retried["result"]["participants"] == [
        {"name": "ada", "turns_integrated": 3, "insights_created": 3, "memories_created": 6, "watermark": 3}]

    # The next attempt finishes bob and leaves ada's committed work as it was.
    given_before = len(echo.given)
    assert run_job(job_id, echo_settings, WORKER) == "succeeded"
    assert echo.given[given_before:] == [("bob", [1, 2, 3])]
    assert job(world, job_id)["result"]["participants"] == [
        {"name": "ada", "turns_integrated": 3, "insights_created": 3, "memories_created": 6, "watermark": 3},
        {"name": "bob", "turns_integrated": 3, "insights_created": 3, "memories_created": 6, "watermark": 3}]
    assert contents(insights(world, name, "ada")) == LINES[:3]
    assert contents(insights(world, name, "bob")) == LINES[:3]
