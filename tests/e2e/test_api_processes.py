"""Two API processes on one database: what one accepts, the other serves, and a key revoked
through one stops working on the other at its very next request (no process keeps a copy of
the keys that could go stale)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.embedded import free_port
from shared.stack import Processes, engram, http_ok
from tests.e2e.conftest import ROOT, System
from tests.e2e.test_system import make_namespace, make_session


@pytest.fixture(scope="module")
def second_api(system: System) -> Iterator[httpx.Client]:
    port = free_port()
    procs = Processes({"api2": engram("api", "--port", str(port))}, system.env,
                      ROOT / "test-artifacts" / "e2e-logs", cwd=ROOT)
    procs.ready = {"api2 /readyz": http_ok(f"http://127.0.0.1:{port}/readyz")}
    procs.start()
    try:
        procs.wait_ready()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=40) as client:
            yield client
    finally:
        procs.stop_all()


def test_revoked_key_stops_working_on_every_api_process(system: System, second_api: httpx.Client) -> None:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=2)
    key = system.call("POST", f"/namespaces/{ns}/keys", json={"description": "revoked soon"})
    auth = {"Authorization": f"Bearer {key['secret']}"}
    first, second = system.api, second_api
    # Both processes have served the key: on the fast path (accept, read a job) and the others.
    job = first.post(f"/v1/namespaces/{ns}/sessions/{session}/integrate", headers=auth)
    assert job.status_code in (200, 202), job.text
    job_url = f"/v1/namespaces/{ns}/jobs/{job.json()['id']}"
    for api in (first, second):
        assert api.get(job_url, headers=auth).status_code == 200
        assert api.get(f"/v1/namespaces/{ns}/sessions/{session}", headers=auth).status_code == 200
    assert second.post(f"/v1/namespaces/{ns}/sessions/{session}/integrate", headers=auth).status_code in (200, 202)

    assert first.delete(f"/v1/namespaces/{ns}/keys/{key['id']}").status_code == 204

    # The very next request on the other process, on each path, is refused.
    for method, path in [("POST", f"/v1/namespaces/{ns}/sessions/{session}/integrate"),
                         ("POST", f"/v1/namespaces/{ns}/sessions/{session}/truncate"),
                         ("GET", job_url), ("GET", f"/v1/namespaces/{ns}/sessions/{session}")]:
        r = second.request(method, path, headers=auth)
        assert r.status_code == 401, f"{method} {path} -> {r.status_code} {r.text}"
        assert r.json()["detail"] == "unknown or revoked key"
    jobs = system.call("GET", f"/namespaces/{ns}/jobs", params={"session": session})["items"]
    assert all(j["kind"] == "integrate" for j in jobs), jobs  # the refused truncate changed nothing


def test_a_job_accepted_by_one_process_is_followed_on_the_other(system: System, second_api: httpx.Client) -> None:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=3)
    job = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")
    r = second_api.get(f"/v1/namespaces/{ns}/jobs/{job['id']}", params={"wait": 30},
                       headers=system.api.headers)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
