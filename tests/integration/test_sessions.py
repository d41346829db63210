"""The session lifecycle of the contract (DESIGN.md section 2), one rule a test."""

from __future__ import annotations

import json

import pytest

from tests.integration import sql
from tests.integration.conftest import World, unique


def test_create_session_without_name_generates_one(world: World) -> None:
    r = world.post("/sessions", json={})
    assert r.status_code == 201
    body = r.json()
    assert body["name"].startswith("session-")
    assert body["turn_count"] == 0 and body["generation"] == 1 and body["data"] == {}
    assert r.headers["location"].endswith(f"/sessions/{body['name']}")


def test_create_session_with_taken_name_is_409(world: World) -> None:
    name = world.session()
    r = world.post("/sessions", json={"name": name})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"


def test_soft_delete_sets_deleted_at_and_expire_time(world: World) -> None:
    name = world.session()
    r = world.http.delete(f"{world.base}/sessions/{name}")
    assert r.status_code == 200
    body = r.json()
    assert body["deleted_at"] is not None and body["expire_time"] > body["deleted_at"]


def test_get_returns_a_deleted_session(world: World) -> None:
    name = world.session()
    world.http.delete(f"{world.base}/sessions/{name}")
    r = world.get(f"/sessions/{name}")
    assert r.status_code == 200 and r.json()["deleted_at"] is not None


def test_list_hides_deleted_unless_include_deleted(world: World) -> None:
    live, gone = world.session(), world.session()
    world.http.delete(f"{world.base}/sessions/{gone}")
    names = [s["name"] for s in world.get("/sessions").json()["items"]]
    assert live in names and gone not in names
    names = [s["name"] for s in world.get("/sessions", params={"include_deleted": "true"}).json()["items"]]
    assert live in names and gone in names


def test_undelete_restores_a_deleted_session(world: World) -> None:
    name = world.session()
    world.http.delete(f"{world.base}/sessions/{name}")
    r = world.post(f"/sessions/{name}/undelete")
    assert r.status_code == 200
    assert r.json()["deleted_at"] is None and r.json()["expire_time"] is None
    assert name in [s["name"] for s in world.get("/sessions").json()["items"]]


def test_undelete_of_a_live_session_is_409(world: World) -> None:
    name = world.session()
    r = world.post(f"/sessions/{name}/undelete")
    assert r.status_code == 409
    assert r.json()["status"] == 409


@pytest.mark.parametrize("write", ["turns", "bind", "unbind", "integrate", "truncate", "patch"])
def test_writes_to_a_deleted_session_are_409(world: World, write: str) -> None:
    agent = world.agent("ada")
    name = world.session()
    world.bind(name, agent)
    world.say(name, "user", "hello")
    before = world.get(f"/sessions/{name}").json()
    world.http.delete(f"{world.base}/sessions/{name}")
    path = f"{world.base}/sessions/{name}"
    r = {
        "turns": lambda: world.http.post(f"{path}/turns", json={"turns": [{"speaker": "u", "content": "x"}]}),
        "bind": lambda: world.http.put(f"{path}/participants/{world.agent('bob')}"),
        "unbind": lambda: world.http.delete(f"{path}/participants/{agent}"),
        "integrate": lambda: world.http.post(f"{path}/integrate"),
        "truncate": lambda: world.http.post(f"{path}/truncate"),
        "patch": lambda: world.http.patch(path, json={"description": "new"}),
    }[write]()
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    after = world.get(f"/sessions/{name}").json()
    assert (after["turn_count"], after["participants"], after["description"]) == (
        before["turn_count"], before["participants"], before["description"])
    assert world.get("/jobs", params={"session": name}).json()["items"] == []


def test_purge_removes_sessions_past_expire_time(world: World, settings) -> None:
    from shared.kit.db import unit_of_work
    from shared.sessions import service

    keep, purge = world.session(), world.session()
    world.say(purge, "user", "soon gone")
    for name in (keep, purge):
        world.http.delete(f"{world.base}/sessions/{name}")
    with unit_of_work(settings) as db:
        sql.run(db, "UPDATE sessions SET expire_time = now() - interval '1 second' WHERE name = %(n)s", {"n": purge})
    with unit_of_work(settings) as db:
        assert service.purge_expired(db) >= 1
    assert world.get(f"/sessions/{purge}").status_code == 404
    assert world.get(f"/sessions/{keep}").status_code == 200


def test_bind_and_unbind_a_participant(world: World) -> None:
    name = world.session()
    agent = world.agent("ada")
    r = world.http.put(f"{world.base}/sessions/{name}/participants/{agent}")
    assert r.status_code == 201
    assert r.json() == {**r.json(), "name": "ada", "last_integration_turn": 0, "pending_turns": 0}
    assert world.http.put(f"{world.base}/sessions/{name}/participants/{agent}").status_code == 200
    assert world.get(f"/sessions/{name}").json()["participants"] == ["ada"]
    assert world.http.delete(f"{world.base}/sessions/{name}/participants/{agent}").status_code == 204
    assert world.get(f"/sessions/{name}/participants").json()["items"] == []
    assert world.http.delete(f"{world.base}/sessions/{name}/participants/{agent}").status_code == 404


def test_bind_of_an_unknown_agent_is_404(world: World) -> None:
    name = world.session()
    r = world.http.put(f"{world.base}/sessions/{name}/participants/nobody")
    assert r.status_code == 404 and "nobody" in r.json()["detail"]


def test_participant_sees_only_turns_appended_while_bound(world: World) -> None:
    name = world.session()
    ada, bob = world.agent("ada"), world.agent("bob")
    world.bind(name, ada)
    world.say(name, "user", "before bob")  # seq 1: ada only
    world.bind(name, bob)
    world.say(name, "user", "with both")  # seq 2: both
    seen = {p: [t["seq"] for t in world.get(f"/sessions/{name}/turns", params={"participant": p}).json()["items"]]
            for p in (ada, bob)}
    assert seen == {"ada": [1, 2], "bob": [2]}
    pending = {p["name"]: p["pending_turns"] for p in world.get(f"/sessions/{name}/participants").json()["items"]}
    assert pending == {"ada": 2, "bob": 1}


def test_turn_visible_to_only_the_named_participants_and_its_speaker(world: World) -> None:
    name = world.session()
    for a in ("ada", "bob", "cy"):
        world.bind(name, world.agent(a))
    world.say(name, "cy", "whisper to ada", visible_to=["ada"])
    world.say(name, "user", "to all")
    seen = {p: [t["seq"] for t in world.get(f"/sessions/{name}/turns", params={"participant": p}).json()["items"]]
            for p in ("ada", "bob", "cy")}
    assert seen == {"ada": [1, 2], "bob": [2], "cy": [1, 2]}


def test_visible_to_must_name_participants(world: World) -> None:
    name = world.session()
    r = world.turns(name, {"speaker": "u", "content": "x", "visible_to": ["ghost"]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "turns", 0, "visible_to"]
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0


def test_append_numbers_turns_in_order(world: World) -> None:
    name = world.session()
    r = world.turns(name, {"speaker": "a", "content": "1"}, {"speaker": "b", "content": "2"})
    assert r.status_code == 201
    assert (r.json()["first_seq"], r.json()["last_seq"]) == (1, 2)
    r = world.turns(name, {"speaker": "a", "content": "3"})
    assert (r.json()["first_seq"], r.json()["last_seq"]) == (3, 3)
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 3


def test_append_batch_is_atomic(world: World) -> None:
    name = world.session()
    world.say(name, "a", "first")
    r = world.turns(name, {"speaker": "a", "content": "ok"}, {"speaker": "a", "content": "bad\u0000"})
    assert r.status_code == 422
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 1
    assert [t["seq"] for t in world.get(f"/sessions/{name}/turns").json()["items"]] == [1]


def test_append_batch_over_the_limit_is_422(world: World, settings) -> None:
    name = world.session()
    r = world.turns(name, *[{"speaker": "a", "content": "x"}] * (settings.max_turns_per_batch + 1))
    assert r.status_code == 422
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0


def test_idempotent_append_returns_the_first_response(world: World) -> None:
    name = world.session()
    key = {"Idempotency-Key": unique("k")}
    first = world.turns(name, {"speaker": "a", "content": "once"}, headers=key)
    again = world.turns(name, {"speaker": "a", "content": "once"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 1


def test_idempotent_append_with_another_body_is_422(world: World) -> None:
    name = world.session()
    key = {"Idempotency-Key": unique("k")}
    world.turns(name, {"speaker": "a", "content": "once"}, headers=key)
    r = world.turns(name, {"speaker": "a", "content": "different"}, headers=key)
    assert r.status_code == 422
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 1


def test_turns_list_paginates(world: World) -> None:
    name = world.session()
    world.turns(name, *[{"speaker": "a", "content": str(i)} for i in range(5)])
    seqs, cursor = [], None
    while True:
        page = world.get(f"/sessions/{name}/turns", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seqs += [t["seq"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seqs == [1, 2, 3, 4, 5]


def test_sessions_list_paginates(world: World) -> None:
    made = [world.session() for _ in range(3)]
    page = world.get("/sessions", params={"limit": 2}).json()
    assert [s["name"] for s in page["items"]] == made[:2] and page["next_cursor"]
    page = world.get("/sessions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["name"] for s in page["items"]] == made[2:] and page["next_cursor"] is None


def test_patch_is_a_json_merge_patch(world: World) -> None:
    name = world.session(data={"a": 1, "b": {"c": 2, "d": 3}})
    r = world.http.patch(f"{world.base}/sessions/{name}", content=b'{"data": {"b": {"c": null, "e": 4}, "f": 5}}',
                         headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"a": 1, "b": {"d": 3, "e": 4}, "f": 5}
    assert r.json()["description"] == ""


def test_patch_with_a_stale_etag_is_412(world: World) -> None:
    name = world.session()
    etag = world.get(f"/sessions/{name}").headers["etag"]
    ok = world.http.patch(f"{world.base}/sessions/{name}", json={"description": "one"}, headers={"If-Match": etag})
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    stale = world.http.patch(f"{world.base}/sessions/{name}", json={"description": "two"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert world.get(f"/sessions/{name}").json()["description"] == "one"


@pytest.mark.parametrize("media_type", ["application/merge-patch+json", "application/json"])
@pytest.mark.parametrize(("patch", "expected"), [
    ({"b": {"c": None, "d": 3}}, {"a": 1, "b": {"d": 3}}),  # nested delete and set together
    ({"b": {"d": 3}}, {"a": 1, "b": {"c": 2, "d": 3}}),  # nested set
    ({"b": {"c": None}}, {"a": 1, "b": {}}),  # nested delete
    ({"b": {"c": {"x": [1]}}}, {"a": 1, "b": {"c": {"x": [1]}}}),  # nested replace of a scalar by an object
    ({"b": {"c": 5}}, {"a": 1, "b": {"c": 5}}),  # nested replace of a scalar
    ({"b": 7}, {"a": 1, "b": 7}),  # replace an object by a scalar
])
def test_patch_changes_nested_keys(world: World, media_type: str, patch: dict, expected: dict) -> None:
    name = world.session(data={"a": 1, "b": {"c": 2}})
    before = world.get(f"/sessions/{name}").headers["etag"]
    r = world.http.patch(f"{world.base}/sessions/{name}", content=json.dumps({"data": patch}),
                         headers={"Content-Type": media_type})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == expected
    after = world.get(f"/sessions/{name}")
    assert after.json()["data"] == expected  # stored, not only answered
    assert after.headers["etag"] == r.headers["etag"] != before
