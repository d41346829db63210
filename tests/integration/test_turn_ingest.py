"""Appending turns: every field a client sends is stored and answered exactly, in order, for
small and large batches, with and without an Idempotency-Key."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.integration.conftest import World, unique

ODD = "quote \" backslash \\ slash / tab \t newline \n cr \r bell \x07 é 日本語 🙂 \u200f rtl {a,b} 'x' NULL"


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_every_field_round_trips(world: World) -> None:
    name = world.session()
    for a in ("ada", "null"):
        world.bind(name, world.agent(a))
    world.say(name, "user", "before")
    sent: list[dict[str, Any]] = [
        {"speaker": "user", "content": ODD},
        {"speaker": "ada", "content": "", "visible_to": []},
        {"speaker": "x" * 128, "content": "y" * 5000, "visible_to": ["ada", "null"]},
        {"speaker": "bob", "content": "meta", "metadata": {
            "s": ODD, "i": 10**99, "neg": -7, "f": 1.5e-7, "t": True, "n": None,
            "list": [1, "two", [3, {"four": 4}]], "nested": {"a": {"b": {"c": []}}}, ODD: {}}},
        {"speaker": "user", "content": "then", "occurred_at": "2020-02-29T23:59:59.123456+05:30"},
        {"speaker": "user", "content": "utc", "occurred_at": "1999-12-31T23:00:00Z", "visible_to": ["null"]},
    ]
    r = world.turns(name, *sent)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["first_seq"], body["last_seq"]) == (2, 7)
    listed = world.get(f"/sessions/{name}/turns").json()["items"]
    assert body["turns"] == listed[1:]  # the answer is what is stored
    for i, (given, turn) in enumerate(zip(sent, body["turns"], strict=True)):
        assert turn["seq"] == 2 + i
        assert (turn["speaker"], turn["content"]) == (given["speaker"], given["content"])
        assert turn["visible_to"] == given.get("visible_to")
        assert turn["metadata"] == given.get("metadata", {})
        assert turn["redacted_at"] is None
        if "occurred_at" in given:
            assert _instant(turn["occurred_at"]) == _instant(given["occurred_at"])
        else:
            assert turn["occurred_at"] == turn["created_at"]
    assert len({t["created_at"] for t in body["turns"]}) == 1  # one transaction
    seen = [t["seq"] for t in world.get(f"/sessions/{name}/turns", params={"participant": "null"}).json()["items"]]
    assert seen == [1, 2, 4, 5, 6, 7]  # 3 ([]) only its speaker sees; the slug "null" is a name, not NULL


def test_large_batches_keep_their_order(world: World) -> None:
    name = world.session()
    batches = [[{"speaker": f"s{i % 3}", "content": f"turn {b}-{i}", "metadata": {"i": i}} for i in range(500)]
               for b in range(3)]
    for b, turns in enumerate(batches):
        r = world.turns(name, *turns)
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["first_seq"], body["last_seq"]) == (b * 500 + 1, b * 500 + 500)
        assert [t["seq"] for t in body["turns"]] == list(range(b * 500 + 1, b * 500 + 501))
        assert [(t["speaker"], t["content"], t["metadata"]) for t in body["turns"]] == [
            (t["speaker"], t["content"], t["metadata"]) for t in turns]
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 1500
    items = world.get(f"/sessions/{name}/turns", params={"after_seq": 998, "limit": 3}).json()["items"]
    assert [(t["seq"], t["content"]) for t in items] == [(999, "turn 1-498"), (1000, "turn 1-499"), (1001, "turn 2-0")]


def test_idempotent_replay_of_a_large_batch(world: World) -> None:
    name = world.session()
    key = {"Idempotency-Key": unique("k")}
    turns = [{"speaker": "a", "content": f"{i} {ODD}", "occurred_at": "2024-05-01T10:00:00+02:00"} for i in range(300)]
    first = world.turns(name, *turns, headers=key)
    again = world.turns(name, *turns, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    other = world.turns(name, *turns[:-1], headers=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 300


def test_the_answer_is_compact_json(world: World) -> None:
    name = world.session()
    r = world.turns(name, {"speaker": "a", "content": "é 日本 🙂"})
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    assert r.content == json.dumps(r.json(), ensure_ascii=False, separators=(",", ":")).encode()


def test_content_over_the_limit_is_422_and_nothing_is_stored(world: World, settings) -> None:
    name = world.session()
    r = world.turns(name, {"speaker": "a", "content": "ok"}, {"speaker": "a", "content": "x" * (settings.max_turn_chars + 1)})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", "turns", 1, "content"]
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0


def test_append_to_an_unknown_session_is_404(world: World) -> None:
    r = world.turns("no-such-session", {"speaker": "a", "content": "x"})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_bad_turns_are_422(world: World) -> None:
    name = world.session()
    for turn in ({"speaker": "", "content": "x"}, {"speaker": "a", "content": "x", "extra": 1},
                 {"speaker": "a", "content": "x", "occurred_at": "2024-05-01T10:00:00"},
                 {"speaker": "a", "content": "x", "visible_to": ["Not A Slug"]},
                 {"speaker": "a", "content": "x", "metadata": {"n": 10**100}}):
        r = world.turns(name, {"speaker": "a", "content": "ok"}, turn)
        assert r.status_code == 422, (turn, r.text)
        assert r.json()["errors"][0]["loc"][:3] == ["body", "turns", 1], r.text
    assert world.http.post(f"{world.base}/sessions/{name}/turns", json={"turns": []}).status_code == 422
    assert world.get(f"/sessions/{name}").json()["turn_count"] == 0
