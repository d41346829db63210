"""What an agent reads when a tool fails: the API's problem+json turned into a tool error that says what
to do (not found, conflict, invalid input naming the field, refused key, Engram unreachable), never a
stack trace."""

from __future__ import annotations

from typing import Any

import anyio

from shared.embedded import free_port
from tests.mcp.conftest import Engram, mcp_session
from tests.mcp.test_tools import text


def errors(engram: Engram, calls: list[tuple[str, dict[str, Any]]], transport: str = "stdio",
           **env: str) -> list[str]:
    """The texts of the tool errors of ``calls``, each of which must fail."""
    async def scenario() -> list[str]:
        found = []
        async with mcp_session(transport, engram.mcp_env(**env)) as s:
            for tool, arguments in calls:
                result = await s.call_tool(tool, arguments)
                assert result.is_error and result.structured_content is None, (tool, result)
                found.append(text(result))
        return found

    texts = anyio.run(scenario)
    for t in texts:
        assert "Traceback" not in t and 'File "' not in t, t
    return texts


def test_problems_of_the_api_become_tool_errors_that_say_what_to_do(engram: Engram) -> None:
    engram.api("POST", "/sessions", json={"name": "gone"})
    engram.api("DELETE", "/sessions/gone")
    engram.api("POST", "/sessions", json={"name": "live"})
    one = [{"speaker": "user", "content": "hello"}]

    missing, deleted, nul, taken, unknown_memory, unknown_turn = errors(engram, [
        ("append_turns", {"session": "nope", "turns": one}),
        ("append_turns", {"session": "gone", "turns": one}),
        ("append_turns", {"session": "live", "turns": [{"speaker": "user", "content": "a\x00b"}]}),
        ("integrate_session", {"session": "nope"}),
        ("forget_memory", {"memory_id": 4242}),
        ("redact_turn", {"session": "live", "seq": 99}),
    ])
    assert "Not found: session 'nope' does not exist" in missing and "create_session=true" in missing
    assert "Conflict" in deleted and "deleted" in deleted and "use another session" in deleted
    assert "Invalid input" in nul and "`turns[0].content`" in nul and "NUL" in nul and "Nothing was written" in nul
    assert "Not found" in taken and "nope" in taken
    assert "Not found" in unknown_memory
    assert "Not found" in unknown_turn and "99" in unknown_turn
    assert engram.api("GET", "/sessions/live")["turn_count"] == 0


def test_arguments_outside_the_schema_are_refused_naming_the_argument(engram: Engram) -> None:
    too_many, bad_name, no_turns, unknown_field = errors(engram, [
        ("recall_memories", {"query": "anything", "limit": 1000}),
        ("list_memories", {"agent": "Not A Slug"}),
        ("append_turns", {"session": "s", "turns": []}),
        ("append_turns", {"session": "s", "turns": [{"speaker": "u", "content": "x", "mood": "?"}]}),
    ], transport="http")
    assert "limit" in too_many and "100" in too_many
    assert "agent" in bad_name
    assert "turns" in no_turns
    assert "mood" in unknown_field


def test_a_missing_default_or_a_bad_setting_is_said_as_such(engram: Engram) -> None:
    no_namespace, no_session = errors(engram, [
        ("list_sessions", {}),
        ("append_turns", {"namespace": engram.namespace, "turns": [{"speaker": "u", "content": "x"}]}),
    ], ENGRAM_MCP_NAMESPACE="")
    assert "No namespace: pass `namespace`" in no_namespace and "ENGRAM_MCP_NAMESPACE" in no_namespace
    assert "No session" in no_session and "create_session=true" in no_session

    (refused,) = errors(engram, [("list_sessions", {})], ENGRAM_API_KEY="not-a-key-of-engram")
    assert "refused the key" in refused and "ENGRAM_API_KEY" in refused

    (unreachable,) = errors(engram, [("recall_memories", {"query": "x"})],
                            ENGRAM_URL=f"http://127.0.0.1:{free_port()}")
    assert "unreachable" in unreachable and "ENGRAM_URL" in unreachable
