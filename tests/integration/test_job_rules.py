"""DESIGN.md section 3: every rule of the job contract, a test (or a few) named after it.

The API runs in-process over HTTP; job bodies run as plain functions (``run_job``), the way a
worker's task calls them: no eager Celery. The queue is the real Redis of the run.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import redis

from shared import task_names
from shared.jobs import effects
from shared.jobs.runner import Heartbeat, run_job
from shared.kit import connector
from shared.kit.db import UnitOfWork, unit_of_work
from tests.integration.conftest import World, unique
from worker.reconciler import reconcile_once

WORKER = "test-worker"


def messages(settings) -> list[str]:
    """Job ids waiting in the Redis queue (kombu keeps messages as JSON in a list)."""
    r = redis.Redis.from_url(settings.redis_url)
    out = []
    for raw in r.lrange(task_names.QUEUE, 0, -1):
        out.append(json.loads(raw)["headers"]["argsrepr"].strip("[]()',\" "))
    return out


@pytest.fixture(autouse=True)
def empty_queue(settings):
    redis.Redis.from_url(settings.redis_url).delete(task_names.QUEUE)


def conversation(world: World, *agents: str, turns: int = 3) -> str:
    name = world.session()
    for a in agents:
        world.bind(name, world.agent(a, f"{a} is an agent"))
    world.turns(name, *[{"speaker": "user", "content": f"The release {i} of the billing service fixes invoice "
                         f"rounding for customers in Japan after the tax change number {i}."} for i in range(turns)])
    return name


def job(world: World, job_id: str) -> dict:
    r = world.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def sql(settings, statement: str, **params):
    """Run a statement (``%(name)s`` parameters) in a transaction of its own; its rows, if any."""
    with unit_of_work(settings) as db:
        if statement.lstrip().upper().startswith("SELECT"):
            return connector.fetch_all(db, statement, params)
        return connector.execute(db, statement, params)


class NoBeat:
    """Stands in for the run's heartbeat where a test drives the effects by hand."""

    lost = cancel_requested = False

    def checkpoint(self) -> None:
        pass


# --- rule 1: accepted means done eventually ------------------------------------------------------


def test_rule1_accepted_job_is_committed_and_its_message_sent_after_commit(world: World, settings) -> None:
    name = conversation(world, "ada")
    r = world.post(f"/sessions/{name}/integrate")
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "queued" and body["kind"] == "integrate" and body["session"] == name
    assert r.headers["location"] == body["links"]["self"]
    assert r.headers["operation-location"].endswith(body["links"]["self"])
    assert int(r.headers["retry-after"]) >= 1
    assert job(world, body["id"])["status"] == "queued"
    assert messages(settings) == [body["id"]]


def test_rule1_lost_message_is_sent_again_by_the_reconciler(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    redis.Redis.from_url(settings.redis_url).flushdb()  # Redis forgets everything
    assert messages(settings) == []
    sql(settings, "UPDATE jobs SET dispatched_at = now() - interval '1 hour' WHERE id = %(id)s", id=job_id)
    reconcile_once(settings)
    assert job_id in messages(settings)
    assert run_job(job_id, settings, WORKER) == "succeeded"
    assert job(world, job_id)["status"] == "succeeded"


def test_rule1_expired_lease_is_requeued_then_completed(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    # a worker claims it, then dies without a word
    assert effects.claim_integration(settings, job_id, "dead-worker", timedelta(seconds=30)).run is not None
    sql(settings, "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %(id)s", id=job_id)
    reconcile_once(settings)
    assert job(world, job_id)["status"] == "queued"
    assert job_id in messages(settings)
    assert run_job(job_id, settings, WORKER) == "succeeded"
    done = job(world, job_id)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert done["result"]["participants"][0]["turns_integrated"] == 3


def test_rule1_attempts_are_bounded_then_the_job_fails_clearly(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    sql(settings, "UPDATE jobs SET status='running', attempts=%(n)s, lease_expires_at = now() - interval '1 second' "
        "WHERE id = %(id)s", id=job_id, n=settings.job_max_attempts)
    reconcile_once(settings)
    failed = job(world, job_id)
    assert failed["status"] == "failed"
    assert failed["error"]["title"] == "The job was lost too many times"
    assert "ENGRAM_JOB_MAX_ATTEMPTS" in failed["error"]["detail"]


def test_rule1_no_eta_or_countdown_in_messages(world: World, settings) -> None:
    name = conversation(world, "ada")
    world.post(f"/sessions/{name}/integrate")
    raw = json.loads(redis.Redis.from_url(settings.redis_url).lrange(task_names.QUEUE, 0, -1)[0])
    assert raw["headers"]["eta"] is None
    assert raw["headers"]["expires"] is not None  # every message carries an expiry


# --- rule 2: effects at most once ------------------------------------------------------------------


def test_rule2_a_duplicate_message_does_nothing(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    assert run_job(job_id, settings, WORKER) == "succeeded"
    insights = world.get(f"/sessions/{name}/participants/ada/insights").json()["items"]
    assert insights
    assert run_job(job_id, settings, WORKER) == "skipped"
    assert world.get(f"/sessions/{name}/participants/ada/insights").json()["items"] == insights
    assert job(world, job_id)["attempts"] == 1


def test_rule2_a_late_worker_with_an_old_token_writes_nothing(world: World, settings) -> None:
    from shared.integrators import load_integrator

    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    claim = effects.claim_integration(settings, job_id, "slow-worker", timedelta(seconds=30))
    stale, plans = claim.run, claim.plans
    assert stale is not None
    # The slow worker's lease expires; the job is re-queued and run to the end by another worker.
    sql(settings, "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %(id)s", id=job_id)
    reconcile_once(settings)
    assert run_job(job_id, settings, WORKER) == "succeeded"
    insights = world.get(f"/sessions/{name}/participants/ada/insights").json()["items"]

    with pytest.raises(effects.Fenced):
        effects.integrate(stale, settings, load_integrator(settings), NoBeat(), plans)
    assert world.get(f"/sessions/{name}/participants/ada/insights").json()["items"] == insights


def test_rule2_an_integration_started_before_a_truncate_commits_nothing_after_it(world: World, settings) -> None:
    from shared.integrators import load_integrator
    from shared.sessions import repository as sessions_repo

    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    claim = effects.claim_integration(settings, job_id, WORKER, timedelta(seconds=30))
    claimed, plans = claim.run, claim.plans
    assert claimed is not None
    with unit_of_work(settings) as db:  # a truncate commits while the integration reflects
        sessions_repo.truncate(db, claimed.session_id)

    with pytest.raises(effects.Superseded):
        effects.integrate(claimed, settings, load_integrator(settings), NoBeat(), plans)
    assert world.get(f"/sessions/{name}/participants/ada/insights").json()["items"] == []
    assert world.get("/agents/ada/memories").json()["items"] == []
    assert world.get(f"/sessions/{name}/participants").json()["items"][0]["last_integration_turn"] == 0


# --- rule 3: one at a time per session, in order -------------------------------------------------


def test_rule3_jobs_of_a_session_run_in_creation_order(world: World, settings) -> None:
    name = conversation(world, "ada")
    first = world.post(f"/sessions/{name}/integrate").json()["id"]
    second = world.post(f"/sessions/{name}/truncate").json()["id"]
    assert messages(settings) == [first]  # only the head of the session holds a message
    assert run_job(second, settings, WORKER) == "skipped"  # not before the first
    assert job(world, second)["status"] == "queued"
    assert run_job(first, settings, WORKER) == "succeeded"
    assert second in messages(settings)  # the finished run sent the next one
    assert run_job(second, settings, WORKER) == "succeeded"
    assert job(world, second)["result"] == {"turns_deleted": 3, "generation": 2}


def test_rule3_never_two_jobs_of_one_session_at_once(world: World, settings) -> None:
    name = conversation(world, "ada")
    first = world.post(f"/sessions/{name}/truncate").json()["id"]
    second = world.post(f"/sessions/{name}/integrate").json()["id"]
    assert effects.claim_integration(settings, first, "w1", timedelta(seconds=30)).run is not None
    assert effects.claim_integration(settings, second, "w2", timedelta(seconds=30)).run is None


def test_rule3_a_queued_integration_is_coalesced(world: World, settings) -> None:
    name = conversation(world, "ada")
    first = world.post(f"/sessions/{name}/integrate")
    world.say(name, "user", "one more thing about the invoices in Japan")
    again = world.post(f"/sessions/{name}/integrate")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert messages(settings) == [first.json()["id"]]
    assert run_job(first.json()["id"], settings, WORKER) == "succeeded"
    # It saw every turn appended before it started, the later one included.
    assert job(world, first.json()["id"])["result"]["participants"][0]["turns_integrated"] == 4


def test_rule3_no_coalescing_across_a_later_queued_job(world: World) -> None:
    name = conversation(world, "ada")
    a = world.post(f"/sessions/{name}/integrate").json()["id"]
    world.post(f"/sessions/{name}/truncate")
    c = world.post(f"/sessions/{name}/integrate")
    assert c.status_code == 202 and c.json()["id"] != a


def test_rule3_no_coalescing_with_a_running_integration(world: World, settings) -> None:
    name = conversation(world, "ada")
    a = world.post(f"/sessions/{name}/integrate").json()["id"]
    assert effects.claim_integration(settings, a, "w1", timedelta(seconds=30)).run is not None
    b = world.post(f"/sessions/{name}/integrate")
    assert b.status_code == 202 and b.json()["id"] != a


def test_rule3_a_request_coalesced_while_the_job_is_being_claimed_has_its_turns_integrated(
        world: World, settings) -> None:
    """The claim takes its snapshot of the session; a request coalesced into the job must not come
    after that snapshot, or the turns appended before it would wait for another integration. Here
    the claim's statement has started (its job row is held by another transaction) when a turn
    is appended and another integrate request comes."""
    name = conversation(world, "ada")  # 3 turns
    first = world.post(f"/sessions/{name}/integrate").json()["id"]
    holder = UnitOfWork(settings)
    connector.fetch_all(holder, "SELECT id FROM jobs WHERE id = %(id)s FOR UPDATE", {"id": first})
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(first, settings, WORKER)))
    runner.start()
    # The claim's statement has started, and waits for the job row.
    deadline = time.monotonic() + 20
    while not sql(settings, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE '%%UPDATE jobs j%%' AND query LIKE '%%snapshot_seq%%'")[0][0]:
        assert time.monotonic() < deadline, "the claim never started"
        time.sleep(0.02)
    release = threading.Timer(1.5, lambda: holder.end(commit=True))
    release.start()
    try:
        world.say(name, "user", "Turn 4: the invoices in Japan also need the new stamp.")
        second = world.post(f"/sessions/{name}/integrate").json()["id"]
    finally:
        release.join()
        runner.join(timeout=60)
        holder.end(commit=False)
    assert outcome == ["succeeded"]
    if second != first:
        assert run_job(second, settings, WORKER) == "succeeded"
    # Whichever job the request got, it integrated turn 4.
    got = job(world, second)["result"]["participants"][0]
    assert got["watermark"] == 4, (first, second, got)


# --- rule 4: Idempotency-Key ----------------------------------------------------------------------


def test_rule4_same_key_returns_the_first_response(world: World, settings) -> None:
    name = conversation(world, "ada")
    key = {"Idempotency-Key": unique("key")}
    first = world.post(f"/sessions/{name}/truncate", headers=key)
    again = world.post(f"/sessions/{name}/truncate", headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert len(world.get("/jobs", params={"session": name}).json()["items"]) == 1


def test_rule4_same_key_other_request_is_422(world: World) -> None:
    name = conversation(world, "ada")
    key = {"Idempotency-Key": unique("key")}
    world.post(f"/sessions/{name}/truncate", headers=key)
    r = world.post(f"/sessions/{name}/integrate", headers=key)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert len(world.get("/jobs", params={"session": name}).json()["items"]) == 1


def test_rule4_first_request_still_in_flight_is_409(world: World, settings) -> None:
    from api.idempotency import _lock_id
    from shared.namespaces import service as namespaces

    name = conversation(world, "ada")
    key = unique("key")
    with unit_of_work(settings) as db:
        ns_id = namespaces.get(db, world.ns).id
        # Hold the key's lock as the first request would while it runs.
        connector.fetch_all(db, "SELECT pg_advisory_xact_lock(%(id)s)", {"id": _lock_id(ns_id, key)})
        r = world.post(f"/sessions/{name}/integrate", headers={"Idempotency-Key": key})
    assert r.status_code == 409
    assert "in flight" in r.json()["detail"]
    assert world.get("/jobs", params={"session": name}).json()["items"] == []


# --- rule 5: cancel ----------------------------------------------------------------------------------


def test_rule5_a_queued_job_is_cancelled_at_once(world: World, settings) -> None:
    name = conversation(world, "ada")
    first = world.post(f"/sessions/{name}/integrate").json()["id"]
    second = world.post(f"/sessions/{name}/truncate").json()["id"]
    r = world.post(f"/jobs/{first}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert second in messages(settings)  # the next job of the session may run now
    assert run_job(first, settings, WORKER) == "skipped"
    assert run_job(second, settings, WORKER) == "succeeded"


def test_rule5_a_running_job_stops_at_its_next_safe_point(world: World, settings) -> None:
    from tests.integration import blocking_integrator as blocking

    name = conversation(world, "ada", "bob")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    blocking.reset()
    s = settings.model_copy(update={"integrator": "tests.integration.blocking_integrator:factory",
})
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(run_job(job_id, s, WORKER)))
    t.start()
    assert blocking.entered.wait(10)  # the run is inside the first participant's reflection
    r = world.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    # A safe point looks at the job at most every Heartbeat.CHECK_INTERVAL; let that pass so the
    # very next safe point (before bob) sees the cancel.
    time.sleep(Heartbeat.CHECK_INTERVAL + 0.1)
    blocking.release.set()
    t.join(10)
    assert outcome == ["cancelled"]
    done = job(world, job_id)
    assert done["status"] == "cancelled" and done["finished_at"]
    assert world.get(f"/sessions/{name}/participants/ada/insights").json()["items"] == []
    assert blocking.calls == ["ada"]  # it stopped before reflecting for bob


def test_rule5_a_finished_job_cannot_be_cancelled(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    run_job(job_id, settings, WORKER)
    r = world.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 409
    assert job(world, job_id)["status"] == "succeeded"


# --- rule 6: long-poll ------------------------------------------------------------------------------


def test_rule6_long_poll_answers_when_the_job_finishes(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    timer = threading.Timer(0.5, lambda: run_job(job_id, settings, WORKER))
    timer.start()
    r = world.get(f"/jobs/{job_id}", params={"wait": 20})
    timer.join()
    assert r.status_code == 200 and r.json()["status"] == "succeeded"


def test_rule6_long_poll_answers_after_n_seconds_when_unfinished(world: World) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    r = world.get(f"/jobs/{job_id}", params={"wait": 1})
    assert r.status_code == 200 and r.json()["status"] == "queued"


def test_rule6_wait_above_the_limit_is_422(world: World, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    r = world.get(f"/jobs/{job_id}", params={"wait": settings.max_wait_seconds + 1})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "wait"]


# --- rule 7: retention ---------------------------------------------------------------------------------


def test_rule7_finished_jobs_are_kept_then_purged(world: World, settings) -> None:
    name = conversation(world, "ada")
    old = world.post(f"/sessions/{name}/truncate").json()["id"]
    run_job(old, settings, WORKER)
    recent = world.post(f"/sessions/{name}/truncate").json()["id"]
    run_job(recent, settings, WORKER)
    days = settings.job_retention_days
    sql(settings, "UPDATE jobs SET finished_at = now() - make_interval(secs => %(s)s) WHERE id = %(id)s",
        id=old, s=(days + 1) * 86400)
    sql(settings, "UPDATE jobs SET finished_at = now() - make_interval(secs => %(s)s) WHERE id = %(id)s",
        id=recent, s=(days - 1) * 86400)
    reconcile_once(settings)
    assert world.get(f"/jobs/{old}").status_code == 404
    assert world.get(f"/jobs/{recent}").status_code == 200


# --- memories ---------------------------------------------------------------------------------------


def test_a_conversation_seen_twice_is_remembered_once_and_reinforced(world: World, settings) -> None:
    first, second = conversation(world, "ada"), world.session()
    world.bind(second, "ada")
    world.turns(second, *[{"speaker": "user", "content": f"The release {i} of the billing service fixes invoice "
                           f"rounding for customers in Japan after the tax change number {i}."} for i in range(3)])
    for name in (first, second):
        job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
        assert run_job(job_id, settings, WORKER) == "succeeded"
    once, twice = [j["result"]["participants"][0] for j in reversed(world.get("/jobs").json()["items"])]
    assert once["insights_created"] >= 1 and twice["insights_created"] == once["insights_created"]
    # The same conversation twice: insights in both sessions, memories once, each seen again once.
    assert once["memories_created"] == 3 + once["insights_created"]  # 3 observations and the reflections
    assert twice["memories_created"] == 0
    memories = world.get("/agents/ada/memories").json()["items"]
    assert len(memories) == once["memories_created"]
    assert {m["reinforcements"] for m in memories} == {1}


def test_rule1_redispatch_backs_off_while_a_job_stays_queued(world: World, settings) -> None:
    base = settings.job_redispatch_seconds
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    redis.Redis.from_url(settings.redis_url).delete(task_names.QUEUE)
    # Re-sent three times already: the next re-send waits 2**3 base intervals, not one.
    sql(settings, "UPDATE jobs SET redispatches = 3, dispatched_at = now() - make_interval(secs => %(s)s) WHERE id = %(id)s",
        id=job_id, s=base * 4)
    reconcile_once(settings)
    assert job_id not in messages(settings)
    sql(settings, "UPDATE jobs SET dispatched_at = now() - make_interval(secs => %(s)s) WHERE id = %(id)s", id=job_id, s=base * 9)
    reconcile_once(settings)
    assert job_id in messages(settings)
    assert sql(settings, "SELECT redispatches FROM jobs WHERE id = %(id)s", id=job_id)[0][0] == 4
