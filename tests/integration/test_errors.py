"""Bad input gets a clear problem+json 4xx and changes nothing; never a 500."""

from __future__ import annotations

import pytest

from tests.integration.conftest import World

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def assert_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    assert "Traceback" not in r.text
    return body


def test_unknown_route_is_a_404_problem(http) -> None:
    body = assert_problem(http.get("/v1/nowhere"), 404)
    assert body["instance"] == "/v1/nowhere"


def test_wrong_method_is_a_405_problem(http) -> None:
    assert_problem(http.delete("/v1/namespaces"), 405)


def test_declared_oversized_body_is_413(world: World, settings) -> None:
    name = world.session()
    big = b'{"turns": [{"speaker": "a", "content": "' + b"x" * settings.max_body_bytes + b'"}]}'
    assert_problem(world.http.post(f"{world.base}/sessions/{name}/turns", content=big,
                                   headers={"Content-Type": "application/json"}), 413)
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0


def test_streamed_oversized_body_is_413(world: World, settings) -> None:
    name = world.session()

    def chunks():
        yield b'{"turns": [{"speaker": "a", "content": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}]}'

    r = world.http.post(f"{world.base}/sessions/{name}/turns", content=chunks(),
                        headers={"Content-Type": "application/json"})
    assert_problem(r, 413)
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0


def test_malformed_json_is_400(world: World) -> None:
    name = world.session()
    r = world.http.post(f"{world.base}/sessions/{name}/turns", content=b'{"turns": [',
                        headers={"Content-Type": "application/json"})
    assert_problem(r, 400)


def test_invalid_fields_are_listed_in_a_422(world: World) -> None:
    name = world.session()
    r = world.turns(name, {"speaker": 5, "content": ["not", "text"]})
    body = assert_problem(r, 422)
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "turns", 0, "speaker") in locs and ("body", "turns", 0, "content") in locs


@pytest.mark.parametrize("payload", [
    {"name": "bad\u0000name"},
    {"description": "nul\u0000inside"},
    {"data": {"k": "nul\u0000"}},
    {"data": {"nul\u0000key": 1}},
])
def test_nul_bytes_are_422(world: World, payload: dict) -> None:
    assert_problem(world.post("/sessions", json=payload), 422)


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"turns": [{"speaker": "a", "content": "lone \\ud800 surrogate"}]}', "content"),
    (b'{"turns": [{"speaker": "\\udfff", "content": "x"}]}', "speaker"),
    (b'{"turns": [{"speaker": "a", "content": "x", "metadata": {"k": "\\ud83d"}}]}', "metadata"),
])
def test_lone_surrogates_are_422_and_change_nothing(world: World, raw: bytes, field: str) -> None:
    name = world.session()
    r = world.http.post(f"{world.base}/sessions/{name}/turns", content=raw, headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422)
    assert [e["loc"][:5] for e in body["errors"]] == [["body", "turns", 0, field]], body
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0
    # A pair of surrogates is one character (U+1F642), and fine.
    ok = b'{"turns": [{"speaker": "a", "content": "smile \\ud83d\\ude42"}]}'
    r = world.http.post(f"{world.base}/sessions/{name}/turns", content=ok, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["turns"][0]["content"] == "smile \U0001f642"


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_occurred_at_outside_the_years_1_to_9999_in_utc_is_422_and_changes_nothing(world: World, occurred_at: str) -> None:
    name = world.session()
    r = world.turns(name, {"speaker": "a", "content": "x", "occurred_at": occurred_at})
    body = assert_problem(r, 422)
    assert any(e["loc"][-1] == "occurred_at" for e in body["errors"]), body
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0
    r = world.turns(name, {"speaker": "a", "content": "x", "occurred_at": "0001-01-01T00:00:00-01:00"})
    assert r.status_code == 201, r.text
    assert r.json()["turns"][0]["occurred_at"].startswith("0001-01-01T01:00:00")


def test_huge_integers_never_give_a_500(world: World) -> None:
    name = world.session()
    assert_problem(world.get(f"/sessions/{name}/turns", params={"after_seq": 10**40}), 422)
    assert_problem(world.get("/sessions", params={"limit": 10**30}), 422)
    assert_problem(world.post("/sessions", json={"data": {"n": 10**200}}), 422)
    r = world.http.post(f"{world.base}/sessions", content=b'{"data": {"n": ' + b"9" * 5000 + b"}}",
                        headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text


def test_nan_is_refused(world: World) -> None:
    r = world.http.post(f"{world.base}/sessions", content=b'{"data": {"n": NaN}}',
                        headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422)


def test_deeply_nested_json_is_refused(world: World) -> None:
    r = world.http.post(f"{world.base}/sessions", content=b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                        headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text


def test_wrong_types_are_422(world: World) -> None:
    assert_problem(world.post("/sessions", json={"data": ["not", "an", "object"]}), 422)
    assert_problem(world.post("/sessions", json=["a", "list"]), 422)
    assert_problem(world.post("/sessions", json={"unknown_field": 1}), 422)


def test_bad_slug_in_path_is_422(http) -> None:
    assert_problem(http.put("/v1/namespaces/Not_A_Slug!", json={}), 422)


def test_bad_cursor_is_422(world: World) -> None:
    body = assert_problem(world.get("/sessions", params={"cursor": "garbage!!"}), 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


def test_page_size_above_the_limit_is_422(world: World, settings) -> None:
    assert_problem(world.get("/sessions", params={"limit": settings.max_page_size + 1}), 422)


def test_turn_longer_than_the_limit_is_422(world: World, settings) -> None:
    name = world.session()
    assert_problem(world.turns(name, {"speaker": "a", "content": "x" * (settings.max_turn_chars + 1)}), 422)


def test_unknown_job_id_is_404(world: World) -> None:
    assert_problem(world.get("/jobs/not-a-uuid"), 404)
    assert_problem(world.get("/jobs/00000000-0000-0000-0000-000000000000"), 404)


def test_append_while_a_truncate_is_pending_is_409(world: World) -> None:
    name = world.session()
    world.say(name, "a", "before")
    job = world.post(f"/sessions/{name}/truncate").json()
    body = assert_problem(world.turns(name, {"speaker": "a", "content": "would be lost"}), 409)
    assert body["job"] == job["id"]
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 1
