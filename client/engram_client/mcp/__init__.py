"""``engram-mcp``: Engram's memory served to agent hosts over the Model Context Protocol.

A client of the HTTP API (through ``engram_client``), so it runs beside the agent and needs none of
the server's packages: ``pip install "./client[mcp]"``, then ``engram-mcp`` (stdio, for desktop hosts)
or ``engram-mcp --transport http`` (streamable HTTP, for remote agents). The tools: append turns,
integrate a session (with progress, cancellable), recall, context, list sessions and memories,
forget a memory, redact a turn. Settings: ``engram_client.mcp.settings``.
"""
