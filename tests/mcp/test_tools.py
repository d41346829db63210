"""Every tool of engram-mcp, over stdio and over streamable HTTP, against the real running system: what
each returns, and what it did to Engram as the API shows it. Integrations run on the workers with the
e2e integrator, which takes 2 s per participant whose agent's description says "slow"."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.types import CallToolResult

from tests.mcp.conftest import TRANSPORTS, Engram, mcp_session

TURNS = [
    {"speaker": "user", "content": "My name is Grace and I maintain the billing service written in Go."},
    {"speaker": "ada", "content": "Nice to meet you Grace. What is failing in billing?"},
    {"speaker": "user", "content": "Invoices for customers in Japan are rounded wrongly since the tax change in April."},
]


async def call(mcp: ClientSession, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """The structured result of a tool call that must succeed."""
    result = await mcp.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text(result)}"
    assert result.structured_content is not None
    return result.structured_content


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def slow_session(engram: Engram, participants: int = 3) -> str:
    """A session whose participants each take the integrator 2 s, with turns for all of them."""
    name = "slow-" + str(time.monotonic_ns())[-8:]
    engram.api("POST", "/sessions", json={"name": name})
    for i in range(participants):
        engram.api("PUT", f"/agents/slow-{i}", json={"description": "a slow and careful thinker"})
        engram.api("PUT", f"/sessions/{name}/participants/slow-{i}")
    engram.api("POST", f"/sessions/{name}/turns", json={"turns": [
        {"speaker": f"slow-{i % participants}", "content": f"Step {i}: the certificate of service {i} expires in May."}
        for i in range(6)]})
    return name


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_tool_against_a_real_engram(engram: Engram, transport: str) -> None:
    async def scenario() -> None:
        async with mcp_session(transport, engram.mcp_env()) as s:
            # append: creates the session, creates and binds the default agent (ada), then appends
            out = await call(s, "append_turns", session="billing", create_session=True, bind_agent=True,
                             agent_description="a curious agent", turns=TURNS)
            assert out == {"namespace": engram.namespace, "session": "billing", "first_seq": 1, "last_seq": 3,
                           "session_created": True, "bound_agent": "ada"}
            again = await call(s, "append_turns", session="billing", create_session=True,
                               turns=[{"speaker": "user", "content": "Thanks!", "metadata": {"mood": "glad"}}])
            assert (again["session_created"], again["first_seq"], again["bound_agent"]) == (False, 4, None)
            assert engram.api("GET", "/agents/ada")["description"] == "a curious agent"
            assert [p["name"] for p in engram.api("GET", "/sessions/billing/participants")["items"]] == ["ada"]

            sessions = await call(s, "list_sessions")
            assert [x["name"] for x in sessions["items"]] == ["billing"] and sessions["next_cursor"] is None
            assert sessions["items"][0]["turn_count"] == 4

            integrated = await call(s, "integrate_session", session="billing")
            assert integrated["status"] == "succeeded" and integrated["finished"] is True
            (ada,) = integrated["participants"]
            assert (ada["name"], ada["turns_integrated"], ada["watermark"]) == ("ada", 4, 4)
            assert ada["memories_created"] >= 3
            assert engram.system.call("GET", f"/namespaces/{engram.namespace}/jobs/{integrated['job_id']}")[
                "status"] == "succeeded"
            nothing_new = await call(s, "integrate_session", session="billing")
            assert nothing_new["participants"][0]["turns_integrated"] == 0

            recalled = await call(s, "recall_memories", query="what is wrong with the Japan invoices?", limit=3)
            assert recalled["agent"] == "ada" and 1 <= len(recalled["items"]) <= 3
            assert "Japan" in recalled["items"][0]["content"] and 3 in recalled["items"][0]["evidence"]
            filtered = await call(s, "recall_memories", query="Grace billing Go", kinds=["observation"],
                                  session="billing", explain=True)
            assert filtered["items"] and {m["kind"] for m in filtered["items"]} == {"observation"}
            assert all(m["explain"]["full_text"]["rank"] >= 1 for m in filtered["items"])

            context = await call(s, "get_context", session="billing", query="Japan invoices", max_chars=400)
            assert context["participant"] == "ada" and context["namespace"] == engram.namespace
            assert 0 < len(context["text"]) <= 400 and "Japan" in context["text"]
            assert [t["seq"] for t in context["turns"]] == [1, 2, 3, 4]

            first = await call(s, "list_memories", limit=2)
            assert len(first["items"]) == 2 and first["next_cursor"]
            rest = await call(s, "list_memories", limit=200, cursor=first["next_cursor"])
            memories = first["items"] + rest["items"]
            assert rest["next_cursor"] is None
            assert [m["id"] for m in memories] == [m["id"] for m in engram.api("GET", "/agents/ada/memories")["items"]]

            victim = next(m for m in memories if 1 not in m["evidence"])
            forgotten = await call(s, "forget_memory", memory_id=victim["id"])
            assert forgotten == {"namespace": engram.namespace, "agent": "ada", "memory_id": victim["id"],
                                 "forgotten": True}
            left = engram.api("GET", "/agents/ada/memories", params={"limit": 200})["items"]
            assert victim["id"] not in [m["id"] for m in left]

            cited = [m["id"] for m in left if m["session"] == "billing" and 1 in m["evidence"]]
            assert cited, "the observation of turn 1 cites it"
            redacted = await call(s, "redact_turn", session="billing", seq=1)
            assert (redacted["seq"], redacted["memories_deleted"]) == (1, len(cited)) and redacted["redacted_at"]
            turn = engram.api("GET", "/sessions/billing/turns")["items"][0]
            assert turn["seq"] == 1 and turn["redacted_at"] and turn["content"] != TURNS[0]["content"]
            assert not set(cited) & {m["id"] for m in engram.api("GET", "/agents/ada/memories")["items"]}

    anyio.run(scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_integration_reports_progress_while_it_runs(engram: Engram, transport: str) -> None:
    session = slow_session(engram, participants=3)
    seen: list[tuple[float, float | None, str | None, float]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message, time.monotonic()))

    async def scenario() -> dict[str, Any]:
        async with mcp_session(transport, engram.mcp_env()) as s:
            result = await s.call_tool("integrate_session", {"session": session}, progress_callback=on_progress)
            assert not result.is_error, text(result)
            assert result.structured_content is not None
            return {**result.structured_content, "returned_at": time.monotonic()}

    out = anyio.run(scenario)
    assert out["status"] == "succeeded" and sorted(p["name"] for p in out["participants"]) == [
        "slow-0", "slow-1", "slow-2"]
    # The steps: the job's start, then each of the 3 participants integrated.
    values = [p for p, *_ in seen]
    assert values == sorted(set(values)), f"progress must grow: {seen}"
    assert (values[-1], seen[-1][1]) == (4, 4) and "succeeded: 3 of 3 participants" in (seen[-1][2] or "")
    running = [(p, total, message) for p, total, message, at in seen if "running" in (message or "")]
    assert running and all(0 < p < 4 and total == 4 for p, total, _ in running), seen
    # The first one came while the job was still queued or running, seconds before the answer.
    assert out["returned_at"] - seen[0][3] > 2
    assert all(out["job_id"] in (message or "") for _, _, message, _ in seen)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancelling_the_call_cancels_the_engram_job(engram: Engram, transport: str) -> None:
    session = slow_session(engram, participants=3)
    job_ids: list[str] = []

    async def scenario() -> None:
        async with mcp_session(transport, engram.mcp_env()) as s:
            with anyio.CancelScope() as scope:
                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    job_ids.append(re.search(r"job (\S+)", message or "").group(1))  # type: ignore[union-attr]
                    scope.cancel()  # the SDK sends notifications/cancelled for the call

                await s.call_tool("integrate_session", {"session": session}, progress_callback=on_progress)
            assert scope.cancelled_caught
            # The connection outlives the cancelled call.
            assert (await call(s, "list_sessions"))["items"]

    anyio.run(scenario)
    job = engram.system.wait_job(engram.namespace, job_ids[0], timeout=60)
    assert job["status"] == "cancelled", job
    integrated = (job["result"] or {}).get("participants", [])
    assert len(integrated) < 3, job
    pending = {p["name"]: p["pending_turns"] for p in engram.api("GET", f"/sessions/{session}/participants")["items"]}
    assert sum(1 for n in pending.values() if n) == 3 - len(integrated), pending


def test_tools_are_described_with_schemas_and_truthful_annotations(engram: Engram) -> None:
    async def scenario() -> dict[str, Any]:
        async with mcp_session("stdio", engram.mcp_env()) as s:
            return {t.name: t for t in (await s.list_tools()).tools}

    tools = anyio.run(scenario)
    hints = {name: (t.annotations.read_only_hint, t.annotations.destructive_hint, t.annotations.idempotent_hint,
                    t.annotations.open_world_hint) for name, t in tools.items() if t.annotations}
    assert hints == {
        # name: (read-only, destructive, idempotent, open world)
        "append_turns": (False, False, False, False),
        "integrate_session": (False, False, True, False),
        "recall_memories": (True, False, True, False),
        "get_context": (True, False, True, False),
        "list_sessions": (True, False, True, False),
        "list_memories": (True, False, True, False),
        "forget_memory": (False, True, True, False),
        "redact_turn": (False, True, True, False),
    }
    for name, tool in tools.items():
        assert tool.title and len(tool.description or "") > 80, name
        assert tool.input_schema["type"] == "object" and tool.output_schema and tool.output_schema["type"] == "object"
        for arg, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{name}.{arg} has no description"
    assert tools["recall_memories"].input_schema["required"] == ["query"]
    assert tools["recall_memories"].input_schema["properties"]["limit"]["maximum"] == 100
    assert set(tools["recall_memories"].input_schema["properties"]) >= {"query", "limit", "session", "kinds", "explain"}
    assert tools["get_context"].input_schema["properties"]["max_chars"]["minimum"] == 100
    assert set(tools["redact_turn"].input_schema["required"]) == {"session", "seq"}
    assert "items" in tools["list_memories"].output_schema["properties"]
    assert "cursor" in tools["list_memories"].input_schema["properties"]
    assert json.dumps(tools["append_turns"].input_schema).count("TurnInput") >= 1
