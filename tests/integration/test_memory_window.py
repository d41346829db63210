"""A worker keeps the window of recent memories of the agents it wrote (shared.memories.stream.Window)
and reads only what was added since: what it compares new memories with must still be the agent's
latest memories, whatever other processes wrote or deleted in between."""

from __future__ import annotations

from typing import Any

from shared.kit.db import unit_of_work
from shared.memories import stream
from tests.integration import sql
from tests.integration.conftest import World
from tests.integration.test_memory_stream import GRACE, grace_session, integrate, memories

FACT = GRACE[2]["content"]


def observations_of(world: World, content: str) -> list[dict[str, Any]]:
    return [m for m in memories(world) if m["kind"] == "observation" and m["content"] == content]


def again(world: World, settings: Any, name: str) -> None:
    world.turns(name, {**GRACE[2], "occurred_at": "2026-03-02T10:00:00Z"})
    integrate(world, settings, name)


def test_a_forgotten_memory_is_not_reinforced_it_is_remembered_anew(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)  # the worker now keeps ada's window
    (fact,) = observations_of(world, FACT)
    assert world.http.delete(f"{world.base}/agents/ada/memories/{fact['id']}").status_code == 204
    again(world, settings, name)
    (anew,) = observations_of(world, FACT)
    assert anew["id"] > fact["id"] and anew["reinforcements"] == 0


def test_memories_written_by_another_process_are_compared_with(world: World, settings: Any) -> None:
    name = grace_session(world)
    integrate(world, settings, name)
    stream._windows.clear()  # as if another worker had written ada's first memories
    again(world, settings, name)
    (fact,) = observations_of(world, FACT)
    assert fact["reinforcements"] == 1
    other = grace_session(world)  # the window kept now is read again only from its newest memory
    with unit_of_work(settings) as db:  # another process adds a memory meanwhile
        sql.run(
            db, "INSERT INTO memories (agent_id, session_name, kind, speaker, content, importance, evidence) "
            "SELECT agent_id, session_name, kind, speaker, 'Deploys are frozen until Monday.', 3, evidence "
            "FROM memories WHERE id = %(id)s", {"id": fact["id"]})
    world.turns(other, {"speaker": "user", "content": "Deploys are frozen until Monday."})
    integrate(world, settings, other)
    (frozen,) = observations_of(world, "Deploys are frozen until Monday.")
    assert frozen["reinforcements"] == 1
