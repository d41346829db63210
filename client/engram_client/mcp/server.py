"""The MCP server: the tools of ``engram_client.mcp.tools`` on the SDK's ``MCPServer``, with their
annotations, and one ``AsyncEngramClient`` for the server's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp.server import MCPServer
from mcp.types import ToolAnnotations

from engram_client.aio import AsyncEngramClient
from engram_client.mcp import tools
from engram_client.mcp.settings import McpSettings

INSTRUCTIONS = """\
Engram keeps your long-term memory across conversations. Record what is said with append_turns \
(in a session you are bound to), then integrate_session to turn the new turns into memories. \
Before answering something that may depend on the past, call recall_memories, or get_context for \
everything about the current session at once. forget_memory and redact_turn delete for good: use \
them only when the user asks to forget something."""

# Every tool works on Engram's memory alone (a closed world); the hints are set on all of them, as
# the protocol's defaults (destructive, not idempotent) would misdescribe most.
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
# name: (tool, title, annotations)
TOOLS: dict[str, tuple[Callable[..., Any], str, ToolAnnotations]] = {
    "append_turns": (tools.append_turns, "Record conversation turns", ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)),
    # Re-running with nothing new integrates nothing: the same call twice has no further effect.
    "integrate_session": (tools.integrate_session, "Integrate a session into memories", ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)),
    "recall_memories": (tools.recall_memories, "Recall memories", READ),
    "get_context": (tools.get_context, "Context for the next reply", READ),
    "list_sessions": (tools.list_sessions, "List sessions", READ),
    "list_memories": (tools.list_memories, "List an agent's memories", READ),
    # Deleting what is already deleted changes nothing more (a second forget answers "not found").
    "forget_memory": (tools.forget_memory, "Forget a memory", ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)),
    "redact_turn": (tools.redact_turn, "Redact a turn", ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)),
}


def build_server(settings: McpSettings) -> MCPServer[tools.Engram]:
    """The MCP server of Engram's memory, configured by ``settings`` (not started)."""

    @asynccontextmanager
    async def connect(_: MCPServer[tools.Engram]) -> AsyncIterator[tools.Engram]:
        async with AsyncEngramClient(settings.url, settings.api_key, timeout=settings.timeout) as client:
            yield tools.Engram(client, settings)

    server: MCPServer[tools.Engram] = MCPServer(
        "engram", title="Engram memory", version=_version(), instructions=INSTRUCTIONS,
        website_url=None, lifespan=connect, log_level=settings.log_level,  # type: ignore[arg-type]
    )
    for name, (fn, title, hints) in TOOLS.items():
        server.add_tool(fn, name=name, title=title, annotations=hints, structured_output=True)
    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engram-client")
    except PackageNotFoundError:  # run from a checkout without installing
        return "0"
