"""End to end, real processes: api, two workers, scheduler, Flower, PostgreSQL and Redis."""

from __future__ import annotations

import secrets
import time
from collections import Counter

import psycopg
import redis

from tests.e2e.conftest import System


def _db(system: System):
    return psycopg.connect(system.services.database_url.replace("postgresql+psycopg://", "postgresql://", 1),
                           autocommit=True)


def make_session(system: System, ns: str, agents: dict[str, str], turns: int) -> str:
    name = "s-" + secrets.token_hex(4)
    system.call("POST", f"/namespaces/{ns}/sessions", json={"name": name})
    for agent, description in agents.items():
        system.call("PUT", f"/namespaces/{ns}/agents/{agent}", json={"description": description})
        system.call("PUT", f"/namespaces/{ns}/sessions/{name}/participants/{agent}")
    system.call("POST", f"/namespaces/{ns}/sessions/{name}/turns", json={"turns": [
        {"speaker": "user" if i % 2 else list(agents)[i % len(agents)],
         "content": f"Turn {i}: the deployment of service number {i} failed because certificate {i} expired."}
        for i in range(turns)]})
    return name


def make_namespace(system: System) -> str:
    ns = "e2e-" + secrets.token_hex(4)
    system.call("PUT", f"/namespaces/{ns}", json={})
    return ns


def insights(system: System, ns: str, session: str, agent: str) -> list[dict]:
    return system.call("GET", f"/namespaces/{ns}/sessions/{session}/participants/{agent}/insights",
                       params={"limit": 200})["items"]


def test_many_sessions_integrated_at_once(system: System) -> None:
    ns = make_namespace(system)
    sessions = [make_session(system, ns, {"ada": "", "bob": ""}, turns=12) for _ in range(16)]
    jobs = {s: system.call("POST", f"/namespaces/{ns}/sessions/{s}/integrate")["id"] for s in sessions}
    done = {s: system.wait_job(ns, j) for s, j in jobs.items()}
    assert {j["status"] for j in done.values()} == {"succeeded"}
    for s, job in done.items():
        for p in job["result"]["participants"]:
            assert p["turns_integrated"] == 12 and p["watermark"] == 12  # each turn exactly once
        parts = system.call("GET", f"/namespaces/{ns}/sessions/{s}/participants")["items"]
        assert {(p["name"], p["last_integration_turn"], p["pending_turns"]) for p in parts} == {
            ("ada", 12, 0), ("bob", 12, 0)}
        again = system.call("POST", f"/namespaces/{ns}/sessions/{s}/integrate")  # nothing new: a no-op
        assert [p["turns_integrated"] for p in system.wait_job(ns, again["id"])["result"]["participants"]] == [0, 0]
    with _db(system) as conn:
        owners = Counter(row[0].split("@")[0] for row in conn.execute(
            "SELECT lease_owner FROM jobs WHERE id = ANY(%s)", (list(jobs.values()),)))
    assert set(owners) == {"w1", "w2"}, owners  # the work was spread over both workers


def test_worker_killed_mid_integration(system: System) -> None:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": "slow", "bob": "slow", "cy": "slow"}, turns=9)
    job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    deadline = time.monotonic() + 30
    owner = None
    while time.monotonic() < deadline and owner is None:
        with _db(system) as conn:
            status, owner = conn.execute("SELECT status, lease_owner FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if status != "running":
            owner = None
            time.sleep(0.1)
    assert owner is not None, "the job never started"
    victim = owner.split("@")[0]
    time.sleep(0.5)  # inside the integration (each slow participant takes 2 s)
    system.kill(victim)  # SIGKILL to the worker and its pool children
    try:
        job = system.wait_job(ns, job_id)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        created = {p["name"]: p["insights_created"] for p in job["result"]["participants"]}
        for agent in ("ada", "bob", "cy"):
            found = [i["content"] for i in insights(system, ns, session, agent)]
            assert found, agent
            assert len(found) == len(set(found)) == created[agent], "insights were duplicated"
        parts = system.call("GET", f"/namespaces/{ns}/sessions/{session}/participants")["items"]
        assert {p["last_integration_turn"] for p in parts} == {9}
    finally:
        system.start(victim)
        system.wait_ready()


def test_redis_flushed_while_jobs_are_queued(system: System) -> None:
    ns = make_namespace(system)
    # Keep both workers busy so that the next jobs wait in the queue.
    busy = [make_session(system, ns, {"ada": "slow", "bob": "slow"}, turns=4) for _ in range(2)]
    busy_jobs = [system.call("POST", f"/namespaces/{ns}/sessions/{s}/integrate")["id"] for s in busy]
    waiting = [make_session(system, ns, {"cy": ""}, turns=4) for _ in range(8)]
    waiting_jobs = [system.call("POST", f"/namespaces/{ns}/sessions/{s}/integrate")["id"] for s in waiting]
    r = redis.Redis.from_url(system.redis_url)
    assert r.llen("engram") > 0  # messages are waiting in Redis...
    r.flushdb()  # ...and Redis forgets them all
    for job_id in busy_jobs + waiting_jobs:
        assert system.wait_job(ns, job_id)["status"] == "succeeded"


def test_truncate_racing_an_integration(system: System) -> None:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": "", "bob": ""}, turns=10)
    base = f"/namespaces/{ns}/sessions/{session}"
    integrate = system.call("POST", f"{base}/integrate")["id"]
    truncate = system.call("POST", f"{base}/truncate")["id"]
    new_turn = {"turns": [{"speaker": "user", "content": "After the reset, the topic is the database migration."}]}
    # While the truncate is pending, appends are refused (it would delete them), not lost.
    refused = system.call("POST", f"{base}/turns", json=new_turn, expect=(409,))
    assert refused["job"] == truncate
    first, second = system.wait_job(ns, integrate), system.wait_job(ns, truncate)
    system.call("POST", f"{base}/turns", json=new_turn)
    later = system.call("POST", f"{base}/integrate")["id"]
    third = system.wait_job(ns, later)
    assert [first["status"], second["status"], third["status"]] == ["succeeded"] * 3
    # In creation order, one at a time.
    assert first["finished_at"] <= second["started_at"] and second["finished_at"] <= third["started_at"]
    state = system.call("GET", base)
    assert state["generation"] == 2 and state["turn_count"] == 1 and state["data"] == {}
    turns = system.call("GET", f"{base}/turns")["items"]
    assert [t["seq"] for t in turns] == [1]
    parts = system.call("GET", f"{base}/participants")["items"]
    assert {(p["last_integration_turn"], p["pending_turns"]) for p in parts} == {(1, 0)}
    for agent in ("ada", "bob"):
        # Insights of the first generation are gone; the new ones cite only the new turn.
        assert {seq for i in insights(system, ns, session, agent) for seq in i["evidence"]} <= {1}
        assert system.call("GET", f"/namespaces/{ns}/agents/{agent}/memories")["items"]  # memories stay


def test_flower_lists_workers_and_finished_integrate_tasks(system: System) -> None:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=3)
    job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    assert system.wait_job(ns, job_id)["status"] == "succeeded"
    workers = system.flower.get("/api/workers", params={"refresh": "true"}).json()
    assert {w.split("@")[0] for w in workers} >= {"w1", "w2"}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tasks = system.flower.get("/api/tasks", params={"taskname": "jobs.integrate", "state": "SUCCESS"}).json()
        if any(job_id in (t.get("args") or "") for t in tasks.values()):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"Flower does not show the finished integrate task of job {job_id}")
    assert system.flower.get("/api/workers", auth=None).status_code == 401  # basic auth is required
