"""/metrics: request figures by route, job figures from PostgreSQL."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import World


def samples(http) -> dict:
    r = http.get("/metrics")
    assert r.status_code == 200
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_requests_by_route_template(world: World) -> None:
    name = world.session()
    world.get(f"/sessions/{name}")
    m = samples(world.http)
    key = ("engram_http_requests_total",
           (("method", "GET"), ("route", "/v1/namespaces/{namespace}/sessions/{session}"), ("status", "200")))
    assert m[key] >= 1


def test_metrics_report_jobs_queue_lag_and_integration_lag(world: World) -> None:
    name = world.session()
    world.bind(name, world.agent("ada"))
    world.say(name, "user", "something to integrate")
    world.post(f"/sessions/{name}/integrate")
    m = samples(world.http)
    assert m[("engram_jobs", (("kind", "integrate"), ("status", "queued")))] >= 1
    assert m[("engram_queue_lag_seconds", ())] >= 0
    assert m[("engram_integration_lag_turns", ())] >= 1
    assert m[("engram_database_up", ())] == 1
