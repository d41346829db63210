"""Webhooks: endpoints per namespace, the outbox written with a job's finish, signed deliveries to
a real HTTP receiver started here, retries with backoff, the retry budget, lost sends, the SSRF
guard (at registration and at each send) and the namespace wall. Job and delivery bodies run as
plain functions (run_job, deliver), the way workers run them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from shared.config import Settings
from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from shared.webhooks import repository as webhooks_repo
from shared.webhooks.sender import deliver
from tests.integration.conftest import World, unique
from tests.webhook_receiver import Receiver
from worker.reconciler import send_due_deliveries

WORKER = "tests@host"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def allowing(settings: Settings) -> Settings:
    """The settings of a deployment that allows private networks (the receiver is on 127.0.0.1)."""
    return settings.model_copy(update={"webhook_allow_private_networks": True, "webhook_retry_base_seconds": 0.0,
                                       "webhook_max_attempts": 3})


def register(world: World, allowing: Settings, name: str, url: str, events: list[str]) -> dict[str, Any]:
    # Through the service with the allowing settings: the API under test refuses private addresses.
    from shared.namespaces import service as namespaces
    from shared.webhooks import service
    from shared.webhooks.schemas import WebhookPut

    with unit_of_work(allowing) as db:
        read = service.put(db, allowing, namespaces.get(db, world.ns), name, WebhookPut.model_validate(
            {"url": url, "events": events}))
        return read.model_dump(mode="json")


def finished_job(world: World, settings: Settings) -> str:
    world.agent("ada")
    session = world.session()
    world.bind(session, "ada")
    world.say(session, "user", "The invoices for Japan are rounded wrongly.")
    job_id: str = world.post(f"/sessions/{session}/integrate").json()["id"]
    assert run_job(job_id, settings, WORKER) == "succeeded"
    return job_id


def deliveries(world: World, name: str) -> list[dict[str, Any]]:
    r = world.get(f"/webhooks/{name}/deliveries")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_endpoint_lifecycle_and_the_secret_shown_once(world: World, settings: Settings) -> None:
    body = {"url": "https://93.184.215.14/hooks", "events": ["job.succeeded"], "description": "billing"}
    created = world.http.put(f"{world.base}/webhooks/billing", json=body)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and Webhook(secret)  # a valid Standard Webhooks secret
    updated = world.http.put(f"{world.base}/webhooks/billing", json={**body, "events": ["job.failed", "job.succeeded"]})
    assert updated.status_code == 200 and "secret" not in updated.json()
    assert updated.json()["events"] == ["job.failed", "job.succeeded"]
    assert world.get("/webhooks/billing").json()["url"] == body["url"]
    assert [w["name"] for w in world.get("/webhooks").json()["items"]] == ["billing"]
    # Stored encrypted: the database holds no trace of the secret.
    with psycopg.connect(settings.libpq_url) as conn:
        stored = conn.execute("SELECT secret_encrypted FROM webhooks w JOIN namespaces n ON n.id = w.namespace_id "
                              "WHERE n.name = %s", (world.ns,)).fetchone()
    assert stored is not None and secret.encode() not in bytes(stored[0]) and secret[6:].encode() not in bytes(stored[0])
    assert world.http.delete(f"{world.base}/webhooks/billing").status_code == 204
    assert world.get("/webhooks/billing").status_code == 404


def test_bad_endpoints_are_refused_and_change_nothing(world: World) -> None:
    for body in ({"url": "ftp://example.com/x", "events": ["job.succeeded"]},
                 {"url": "http://example.com:99999/x", "events": ["job.succeeded"]},
                 {"url": "http://example.com:port/x", "events": ["job.succeeded"]},
                 {"url": "http://[::1/x", "events": ["job.succeeded"]},
                 {"url": "https://93.184.215.14/x", "events": []},
                 {"url": "https://93.184.215.14/x", "events": ["job.started"]},
                 {"url": "https://93.184.215.14/x", "events": ["job.failed", "job.failed"]}):
        r = world.http.put(f"{world.base}/webhooks/bad", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert world.get("/webhooks").json()["items"] == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                                 "http://[::1]/x", "http://192.168.0.10/x"])
def test_ssrf_guard_refuses_private_addresses_at_registration(world: World, url: str) -> None:
    r = world.http.put(f"{world.base}/webhooks/internal", json={"url": url, "events": ["job.succeeded"]})
    assert r.status_code == 422, r.text
    assert "private, loopback or link-local" in r.json()["detail"]
    assert world.get("/webhooks").json()["items"] == []


def test_ssrf_guard_checks_again_at_each_send(world: World, settings: Settings, allowing: Settings,
                                              receiver: Receiver) -> None:
    # Registered while private networks were allowed (or while its name resolved elsewhere):
    # the send checks the address it connects to, and refuses it.
    register(world, allowing, "rebound", receiver.url, ["job.succeeded"])
    finished_job(world, settings)
    [delivery] = deliveries(world, "rebound")
    deliver(delivery["id"], settings.model_copy(update={"webhook_retry_base_seconds": 0.0}))
    assert receiver.requests == []
    [delivery] = deliveries(world, "rebound")
    assert delivery["status"] == "pending" and "private, loopback or link-local" in delivery["attempts"][0]["error"]


def test_a_finished_job_is_delivered_signed(world: World, settings: Settings, allowing: Settings,
                                           receiver: Receiver) -> None:
    secret = register(world, allowing, "ok", receiver.url, ["job.succeeded", "job.failed"])["secret"]
    register(world, allowing, "failures-only", receiver.url, ["job.failed"])
    job_id = finished_job(world, settings)
    [delivery] = deliveries(world, "ok")  # the outbox: written with the finish, for subscribed endpoints only
    assert deliveries(world, "failures-only") == []
    assert delivery["status"] == "pending" and delivery["event"] == "job.succeeded" and delivery["job_id"] == job_id
    assert deliver(delivery["id"], allowing) == "delivered"
    [(headers, body)] = receiver.requests
    payload = Webhook(secret).verify(body, headers)  # the library's own check of the signature
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded" and headers["webhook-id"] == delivery["id"]
    [delivery] = deliveries(world, "ok")
    assert delivery["status"] == "succeeded" and delivery["next_attempt_at"] is None
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [(1, 204, None)]
    assert deliver(delivery["id"], allowing) == "not_due"  # a duplicate message sends nothing


def test_the_first_try_leaves_at_the_finish(world: World, settings: Settings, allowing: Settings) -> None:
    """A job's finish writes its deliveries with no message sent: the scheduler's wake-up (LISTEN),
    which sends what is due, sends them at once, not after the lost-message wait."""
    register(world, allowing, "prompt", "https://93.184.215.14/x", ["job.succeeded"])
    finished_job(world, settings)
    [delivery] = deliveries(world, "prompt")
    with unit_of_work(settings) as db:  # what the wake-up runs, with a lost-message wait far longer than the test
        due = webhooks_repo.due(db, timedelta(hours=1))
    assert delivery["id"] in due
    with unit_of_work(settings) as db:  # sent now: a second wake-up does not send it again
        assert delivery["id"] not in webhooks_repo.due(db, timedelta(hours=1))


def test_a_receiver_down_then_back_gets_the_delivery(world: World, settings: Settings, allowing: Settings,
                                                     receiver: Receiver) -> None:
    register(world, allowing, "flaky", receiver.url, ["job.succeeded"])
    finished_job(world, settings)
    [delivery] = deliveries(world, "flaky")
    receiver.status = 503
    deliver(delivery["id"], allowing)
    [delivery] = deliveries(world, "flaky")
    assert delivery["status"] == "pending" and delivery["attempts"][0]["status_code"] == 503
    receiver.status = 200
    deliver(delivery["id"], allowing)
    [delivery] = deliveries(world, "flaky")
    assert delivery["status"] == "succeeded" and [a["status_code"] for a in delivery["attempts"]] == [503, 200]
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1  # retries keep the id: receivers dedupe on it


def test_a_receiver_failing_forever_uses_up_the_budget_then_fails_visibly(world: World, settings: Settings,
                                                                          allowing: Settings, receiver: Receiver) -> None:
    register(world, allowing, "broken", receiver.url, ["job.succeeded"])
    finished_job(world, settings)
    [delivery] = deliveries(world, "broken")
    receiver.status = 500
    for _ in range(allowing.webhook_max_attempts + 2):
        deliver(delivery["id"], allowing)
    [delivery] = deliveries(world, "broken")
    assert delivery["status"] == "failed" and delivery["finished_at"] is not None
    assert len(delivery["attempts"]) == allowing.webhook_max_attempts == len(receiver.requests)


def test_retries_back_off_exponentially(settings: Settings) -> None:
    from shared.webhooks.sender import retry_delay

    s = settings.model_copy(update={"webhook_retry_base_seconds": 10.0})
    assert [retry_delay(s, n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_delay(s, 30) == 3600  # capped at an hour


def test_a_send_whose_worker_was_lost_is_sent_again(world: World, settings: Settings, allowing: Settings,
                                                    receiver: Receiver) -> None:
    register(world, allowing, "lost", receiver.url, ["job.succeeded"])
    finished_job(world, settings)
    [delivery] = deliveries(world, "lost")
    with unit_of_work(allowing) as db:  # a worker claims the send, then dies before recording it
        send = webhooks_repo.claim(db, delivery["id"], timedelta(seconds=0), allowing.webhook_max_attempts)
    assert send is not None
    requeued, _ = send_due_deliveries(allowing)  # the scheduler: lease expired, pending again
    assert requeued >= 1
    assert deliver(delivery["id"], allowing) == "delivered"
    [delivery] = deliveries(world, "lost")
    assert delivery["status"] == "succeeded" and len(receiver.requests) == 1
    # the late record of the lost send is fenced out by its token
    with unit_of_work(allowing) as db:
        from datetime import UTC, datetime

        from shared.models.states import DeliveryStatus
        assert not webhooks_repo.record(db, send, status=DeliveryStatus.FAILED, started_at=datetime.now(UTC), duration_ms=1,
                                        status_code=None, error="late", retry_in=0)


def test_another_namespace_sees_none_of_them(app: Any, world: World, allowing: Settings) -> None:
    register(world, allowing, "mine", "https://93.184.215.14/x", ["job.succeeded"])
    other = unique("other")
    assert world.http.put(f"/v1/namespaces/{other}", json={}).status_code == 201
    secret = world.http.post(f"/v1/namespaces/{other}/keys", json={}).json()["secret"]
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as intruder:
        for method, path in [("GET", "/webhooks/mine"), ("GET", "/webhooks/mine/deliveries"),
                             ("DELETE", "/webhooks/mine"), ("GET", "/webhooks")]:
            r = intruder.request(method, world.base + path)
            assert r.status_code == 404, (method, path, r.text)
        r = intruder.put(f"{world.base}/webhooks/mine", json={"url": "https://93.184.215.14/y", "events": ["job.failed"]})
        assert r.status_code == 404
    assert world.get("/webhooks/mine").json()["url"] == "https://93.184.215.14/x"
    assert json.dumps(world.get("/webhooks").json()).count("mine") == 1


@pytest.mark.parametrize("how", ["nothing new", "truncate", "cancelled"])
def test_every_way_a_job_finishes_writes_its_deliveries(world: World, settings: Settings, allowing: Settings,
                                                        how: str) -> None:
    register(world, allowing, "all", "https://93.184.215.14/x", ["job.succeeded", "job.failed", "job.cancelled"])
    world.agent("ada")
    session = world.session()
    world.bind(session, "ada")
    if how == "nothing new":  # finished in its claim's round trip
        job_id = world.post(f"/sessions/{session}/integrate").json()["id"]
        assert run_job(job_id, settings, WORKER) == "succeeded"
        event = "job.succeeded"
    elif how == "truncate":
        world.say(session, "user", "to be forgotten")
        job_id = world.post(f"/sessions/{session}/truncate").json()["id"]
        assert run_job(job_id, settings, WORKER) == "succeeded"
        event = "job.succeeded"
    else:
        job_id = world.post(f"/sessions/{session}/integrate").json()["id"]
        assert world.post(f"/jobs/{job_id}/cancel").status_code == 200
        event = "job.cancelled"
    [delivery] = deliveries(world, "all")
    assert (delivery["job_id"], delivery["event"], delivery["status"]) == (job_id, event, "pending")
