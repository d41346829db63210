"""Webhooks through the running system: the job's finish writes the delivery, the scheduler sends
its message, a worker POSTs it to a real receiver started here. A receiver down for a while, and
a worker SIGKILLed in the middle of a send, still end with the event delivered."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook

from shared.embedded import free_port
from tests.e2e.conftest import WORKERS, System
from tests.e2e.test_system import make_namespace, make_session
from tests.webhook_receiver import Receiver


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def setup(system: System, port: int) -> tuple[str, str, str]:
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=2)
    hook = system.call("PUT", f"/namespaces/{ns}/webhooks/done", json={
        "url": f"http://127.0.0.1:{port}/engram", "events": ["job.succeeded", "job.failed"]})
    return ns, session, hook["secret"]


def the_delivery(system: System, ns: str) -> dict[str, Any] | None:
    items = system.call("GET", f"/namespaces/{ns}/webhooks/done/deliveries")["items"]
    return items[0] if items else None


def test_a_finished_job_is_delivered_signed_to_a_real_receiver(system: System) -> None:
    port = free_port()
    receiver = Receiver(port, status=200)
    try:
        ns, session, secret = setup(system, port)
        job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
        assert system.wait_job(ns, job_id)["status"] == "succeeded"
        eventually(lambda: receiver.requests, 30, "the delivery")
        headers, body = receiver.requests[0]
        payload = Webhook(secret).verify(body, headers)
        assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job_id
        delivery = eventually(lambda: (d := the_delivery(system, ns)) and d["status"] == "succeeded" and d, 10,
                              "the delivery marked succeeded")
        assert delivery["id"] == headers["webhook-id"] and len(delivery["attempts"]) == 1
    finally:
        receiver.close()


def test_a_receiver_down_for_a_while_gets_the_delivery_once_back(system: System) -> None:
    port = free_port()  # nothing listens there yet: connection refused
    ns, session, _ = setup(system, port)
    job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    assert system.wait_job(ns, job_id)["status"] == "succeeded"
    eventually(lambda: (d := the_delivery(system, ns)) and len(d["attempts"]) >= 2, 30, "two failed tries")
    assert the_delivery(system, ns)["status"] == "pending"  # type: ignore[index]
    receiver = Receiver(port, status=200)
    try:
        delivery = eventually(lambda: (d := the_delivery(system, ns)) and d["status"] == "succeeded" and d, 60,
                              "the delivery once the receiver is back")
        assert delivery["attempts"][-1]["status_code"] == 200
        assert all(a["status_code"] is None for a in delivery["attempts"][:-1])
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


def test_a_worker_killed_mid_delivery_loses_no_event(system: System) -> None:
    port = free_port()
    receiver = Receiver(port, status=200, hang=20)  # the first request hangs: its worker is killed meanwhile
    try:
        ns, session, _ = setup(system, port)
        job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
        assert system.wait_job(ns, job_id)["status"] == "succeeded"
        eventually(lambda: receiver.requests, 30, "the first try to reach the receiver")
        for worker in WORKERS:  # whichever one is sending: SIGKILL both
            system.kill(worker)
        for worker in WORKERS:
            system.start(worker)
        system.wait_ready()
        delivery = eventually(lambda: (d := the_delivery(system, ns)) and d["status"] == "succeeded" and d, 90,
                              "the delivery after the workers were killed")
        assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1 and len(receiver.requests) >= 2
        assert delivery["attempts"][-1]["status_code"] == 200
    finally:
        receiver.close()
