"""Faults across hosts, each in the middle of a job and healed after HOLD seconds: a worker cut off
from PostgreSQL (keeping Redis) and the reverse, the API cut off from Redis and from PostgreSQL,
PostgreSQL crashing (immediate stop) and restarting, Redis restarting empty.

After each, in SQL: every accepted job reached a terminal state; the effects (insights and
memories) equal those of a calm run of the same conversation, so the cut-off worker's late writes
changed nothing; no job stayed running past its lease (sampled throughout); and once the fault
has healed for HEALED_AFTER seconds, no request answers 5xx."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hosts.cluster import HEALED_AFTER, Cluster, Heal, cluster

HOLD = 10.0  # seconds a fault lasts
NS = "parts"
CONVERSATION = [
    ("user", "The Osaka office moves to the Umeda tower in March."),
    ("ada", "Noted: the Osaka move is planned for March, to the Umeda tower."),
    ("user", "Grace Hopper leads the billing migration; the deadline is the end of April."),
    ("ada", "Grace leads billing, deadline end of April."),
    ("user", "Invoices for Japan are rounded wrongly since the tax change."),
    ("ada", "The Japanese invoice rounding broke with the tax change."),
]


@pytest.fixture(scope="module")
def c() -> Iterator[Cluster]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-p-"))
    try:
        with cluster("partitions", tmp) as running:
            running.call("PUT", f"/namespaces/{NS}", {})
            yield running
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def conversation(c: Cluster, tag: str) -> tuple[str, str]:
    """A session with a slow agent of its own (its integration takes seconds) and the conversation."""
    agent, session = f"ada-{tag}", f"s-{tag}"
    c.call("PUT", f"/namespaces/{NS}/agents/{agent}", {"description": "slow"})
    c.call("POST", f"/namespaces/{NS}/sessions", {"name": session})
    c.call("PUT", f"/namespaces/{NS}/sessions/{session}/participants/{agent}")
    c.call("POST", f"/namespaces/{NS}/sessions/{session}/turns", {"turns": [
        {"speaker": agent if who == "ada" else who, "content": text} for who, text in CONVERSATION]})
    return agent, session


def effects(c: Cluster, agent: str) -> dict[str, list[tuple[Any, ...]]]:
    """What integrating the agent's session wrote, without ids or times."""
    insights = c.sql("SELECT i.content, i.evidence FROM insights i JOIN agents a ON a.id = i.agent_id "
                     "WHERE a.name = %s ORDER BY i.content", (agent,))
    memories = c.sql("SELECT m.kind, m.content, m.evidence, m.reinforcements FROM memories m "
                     "JOIN agents a ON a.id = m.agent_id WHERE a.name = %s ORDER BY m.kind, m.content", (agent,))
    def same(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:  # the agent's name is quoted as a speaker
        return sorted(tuple(v.replace(agent, "ada") if isinstance(v, str) else v for v in row) for row in rows)

    return {"insights": same(insights), "memories": same(memories)}


def open_jobs(c: Cluster) -> int:
    return int(c.sql("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0])


def running_owner(c: Cluster, job_id: str) -> str:
    """The worker (its host name) running the job, once it runs."""
    owner: list[str] = []

    def runs() -> bool:
        rows = c.sql("SELECT lease_owner FROM jobs WHERE id = %s AND status = 'running'", (job_id,))
        owner[:] = [rows[0][0]] if rows else []
        return bool(owner)

    c.eventually(runs, 30, f"job {job_id} to run")
    return owner[0].split("@", 1)[0]


@pytest.fixture(scope="module")
def calm(c: Cluster) -> dict[str, list[tuple[Any, ...]]]:
    agent, session = conversation(c, "calm")
    job = c.call("POST", f"/namespaces/{NS}/sessions/{session}/integrate")
    c.eventually(lambda: c.call("GET", f"/namespaces/{NS}/jobs/{job['id']}")["status"] == "succeeded", 60, "calm run")
    result = effects(c, agent)
    assert result["insights"] and result["memories"]
    return result


class LeaseWatch:
    """Samples, while a fault lasts, the jobs still running well past their lease (none should be:
    the scheduler takes them back). While PostgreSQL is down nothing can take a lease back: a job
    counts once the server has been up for a few seconds."""

    def __init__(self, c: Cluster) -> None:
        self.c, self.stop = c, threading.Event()
        self.overdue: list[tuple[Any, ...]] = []
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        up_since: float | None = None  # since when the watch has reached PostgreSQL without a failure
        while not self.stop.wait(0.5):
            try:
                overdue = self.c.sql("SELECT id, lease_owner, lease_expires_at, now() FROM jobs WHERE status = 'running' "
                                     "AND lease_expires_at < now() - interval '5 seconds'")
            except Exception:  # noqa: BLE001 - PostgreSQL itself may be the fault
                up_since = None
                continue
            up_since = up_since or time.monotonic()
            if time.monotonic() - up_since > 3.0:
                self.overdue += overdue

    def close(self) -> list[tuple[Any, ...]]:
        self.stop.set()
        self.thread.join()
        return self.overdue


# Each takes the cluster and the worker running the job; applies the fault, returns its heal.
FAULTS: dict[str, Callable[[Cluster, str], Heal]] = {
    "worker-postgres": lambda c, owner: c.cut(owner, "data"),
    "worker-redis": lambda c, owner: c.cut(owner, "broker"),
    "api-redis": lambda c, _: c.cut("api", "broker"),
    "api-postgres": lambda c, _: c.cut("api", "data"),
    "postgres-crash": lambda c, _: c.crash_postgres(),
    "redis-restart": lambda c, _: c.wipe_redis(),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_mid_job_loses_nothing_and_applies_nothing_twice(c: Cluster, calm: dict[str, Any], fault: str) -> None:
    tag = f"{fault}-{secrets.token_hex(2)}"
    agent, session = conversation(c, tag)
    _, later_session = conversation(c, tag + "-later")  # integrated while the fault lasts
    job = c.call("POST", f"/namespaces/{NS}/sessions/{session}/integrate")
    owner = running_owner(c, job["id"])
    watch = LeaseWatch(c)
    heal = FAULTS[fault](c, owner)
    try:
        if fault == "api-redis":  # jobs are still accepted; they run once the link heals
            status, later = c.request("POST", f"/v1/namespaces/{NS}/sessions/{later_session}/integrate")
            assert status == 202, later
        elif fault == "api-postgres":  # a clear 503, no hang
            status, problem = c.request("GET", f"/v1/namespaces/{NS}/sessions/{session}", timeout=15)
            assert status == 503 and problem["status"] == 503, problem
        time.sleep(HOLD)
    finally:
        heal()
    healed = time.monotonic()
    if fault != "api-redis":
        c.eventually(lambda: c.request("POST", f"/v1/namespaces/{NS}/sessions/{later_session}/integrate")[0] == 202,
                     HEALED_AFTER, "a job to be accepted after the fault")

    c.eventually(lambda: open_jobs(c) == 0, 120, "every accepted job to finish")
    assert watch.close() == [], "a job stayed running past its lease"
    statuses = c.sql("SELECT s.name, j.status FROM jobs j JOIN sessions s ON s.id = j.session_id "
                     "WHERE s.name IN (%s, %s)", (session, later_session))
    assert sorted(statuses) == sorted([(session, "succeeded"), (later_session, "succeeded")]), statuses
    assert effects(c, agent) == calm  # the cut-off run's late writes changed nothing

    time.sleep(max(0.0, HEALED_AFTER - (time.monotonic() - healed)))
    answers = [c.request(method, path)[0] for method, path in [
        ("GET", f"/v1/namespaces/{NS}/sessions/{session}"), ("GET", f"/v1/namespaces/{NS}/jobs/{job['id']}"),
        ("POST", f"/v1/namespaces/{NS}/sessions/{session}/integrate"), ("GET", "/readyz")] * 5]
    assert max(answers) < 500, answers
