"""What the running system tells Prometheus: each worker's own metrics port (its prefork child's
counts included), Flower's Prometheus endpoint with Engram's task names, and the Grafana
dashboard in ops/, which may name only metrics that exist."""

from __future__ import annotations

import json
import re

import httpx

from shared.kit.metrics import NAMES as WORKER_METRICS
from tests.e2e.conftest import FLOWER_AUTH, ROOT, WORKERS, System
from tests.e2e.test_system import make_namespace, make_session

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN|[+-]Inf)$", re.M)


def samples(text: str) -> list[tuple[str, str, float]]:
    return [(m.group(1), m.group(2) or "", float(m.group(3))) for m in SAMPLE.finditer(text)]


def worker_metrics(system: System) -> list[tuple[str, str, float]]:
    found = []
    for w in WORKERS:
        r = httpx.get(f"http://127.0.0.1:{system.metrics_ports[w]}/metrics", timeout=10)
        assert r.status_code == 200, (w, r.text)
        found += samples(r.text)
    return found


def run_one_job(system: System) -> None:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=2)
    job = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")
    assert system.wait_job(ns, job["id"])["status"] == "succeeded"


def test_each_worker_serves_the_runs_its_children_made(system: System) -> None:
    before = sum(v for n, labels, v in worker_metrics(system) if n == "engram_worker_job_runs_total"
                 and 'kind="integrate"' in labels and 'outcome="succeeded"' in labels)
    run_one_job(system)
    found = worker_metrics(system)
    after = sum(v for n, labels, v in found if n == "engram_worker_job_runs_total"
                and 'kind="integrate"' in labels and 'outcome="succeeded"' in labels)
    assert after >= before + 1  # counted in the pool child, served by the worker's main process
    assert any(n == "engram_worker_job_run_seconds_count" and v >= 1 for n, _, v in found)
    assert any(n == "engram_worker_integrator_seconds_count" and v >= 1 for n, _, v in found)


def test_flower_serves_prometheus_metrics_of_engram_tasks(system: System) -> None:
    run_one_job(system)
    r = system.flower.get("/metrics")
    assert r.status_code == 200, r.text
    events = [(labels, v) for n, labels, v in samples(r.text) if n == "flower_events_total"]
    assert any('task="jobs.integrate"' in labels and 'type="task-succeeded"' in labels and v >= 1
               for labels, v in events), events[:20]
    assert any(n == "flower_worker_online" and v == 1 for n, _, v in samples(r.text))
    # Flower serves /metrics without its basic auth (task names and counts only); the rest of it
    # stays behind the auth. README (Operations) says so.
    assert httpx.get(f"http://127.0.0.1:{system.flower_port}/metrics").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{system.flower_port}/api/workers").status_code == 401
    assert system.flower.auth is not None and FLOWER_AUTH


def test_the_grafana_dashboard_names_only_metrics_that_exist(system: System) -> None:
    run_one_job(system)
    live = {n for n, _, _ in samples(system.api.get("/metrics").text)}
    live |= {n for n, _, _ in worker_metrics(system)}
    live |= {n for n, _, _ in samples(system.flower.get("/metrics").text)}
    declared = {f"{n}{suffix}" for n in WORKER_METRICS for suffix in ("", "_bucket", "_sum", "_count")}
    dashboard = json.loads((ROOT / "ops" / "grafana" / "engram.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {name for e in exprs for name in re.findall(r"\b((?:engram|flower)_[a-z0-9_]+)", e)}
    assert named, "the dashboard names no metric"
    missing = sorted(n for n in named if n not in live and n not in declared)
    assert not missing, f"the dashboard names metrics that nothing serves: {missing}"
