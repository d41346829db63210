"""The README's MCP section: its host configuration starts a working server, and it lists every tool."""

from __future__ import annotations

import json
import re

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.e2e.conftest import ROOT
from tests.mcp.conftest import ENGRAM_MCP, Engram
from tests.mcp.test_tools import TURNS, call

SECTION = re.search(r"\n## Agent hosts: the MCP server.*?(?=\n## )", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_host_configuration_runs_a_working_server(engram: Engram) -> None:
    assert SECTION, "README.md has no section '## Agent hosts: the MCP server'"
    block = re.search(r"```json\n(.*?)```", SECTION.group(0), re.S)
    assert block
    entry = json.loads(block.group(1))["mcpServers"]["engram"]
    assert entry["command"] == "engram-mcp"
    assert set(entry["env"]) == {"ENGRAM_URL", "ENGRAM_API_KEY", "ENGRAM_MCP_NAMESPACE", "ENGRAM_MCP_AGENT"}
    # As a user fills it in: this system's URL, the namespace's key and name; the agent as written.
    env = entry["env"] | {"ENGRAM_URL": f"http://127.0.0.1:{engram.system.api_port}", "ENGRAM_API_KEY": engram.key,
                          "ENGRAM_MCP_NAMESPACE": engram.namespace}

    async def scenario() -> tuple[set[str], dict[str, object]]:
        params = StdioServerParameters(command=ENGRAM_MCP, args=entry["args"], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            await call(session, "append_turns", session="first", create_session=True, bind_agent=True, turns=TURNS)
            await call(session, "integrate_session", session="first")
            return names, await call(session, "recall_memories", query="what about the Japan invoices?", limit=2)

    names, recalled = anyio.run(scenario)
    assert recalled["agent"] == entry["env"]["ENGRAM_MCP_AGENT"]
    assert "Japan" in recalled["items"][0]["content"]  # type: ignore[index]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", SECTION.group(0), re.M))
    assert names == listed and len(names) == 8
