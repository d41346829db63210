"""How an error of the API becomes a tool error an agent can act on.

The API answers problem details (RFC 9457); the client raises them as ``EngramAPIError``s. A tool
turns each into a ``ToolError`` whose text says what went wrong and what to do next (the MCP SDK
sends it as a result with ``isError: true``). No stack trace reaches the agent: anything the tools
did not foresee is logged on the server's stderr, and the agent gets the SDK's generic error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from engram_client.errors import (
    AuthError,
    ConflictError,
    EngramAPIError,
    EngramConnectionError,
    EngramError,
    NotFoundError,
    ValidationError,
)

# Where a field sits in a request (FastAPI's first `loc` item) is not part of the tool's arguments.
_LOCATIONS = ("body", "query", "path", "header")


def field_name(loc: list[Any]) -> str:
    """``["body", "turns", 0, "content"]`` -> ``turns[0].content``: the argument as the tool names it."""
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "the request"


def explain(exc: EngramError) -> str:
    """The text of the tool error for ``exc``: what happened, then what to do."""
    if isinstance(exc, EngramConnectionError):
        return (f"Engram is unreachable at {exc.url} ({exc.reason}). Nothing was done. Retry in a moment; if it "
                "persists, the user must start Engram or fix ENGRAM_URL in this MCP server's settings.")
    if not isinstance(exc, EngramAPIError):
        return f"{exc}. Nothing more is known; retry once, then report it to the user."
    if isinstance(exc, ValidationError):
        fields = [f"`{field_name(list(e.get('loc', [])))}`: {e.get('msg', 'invalid')}" for e in exc.errors]
        listed = "; ".join(fields) if fields else exc.detail
        return f"Invalid input ({listed}). Nothing was written. Correct those arguments and call the tool again."
    if isinstance(exc, NotFoundError):
        return (f"Not found: {exc.detail}. Nothing was written. Check the name or id (list_sessions and "
                "list_memories show what exists); a missing session can be created by append_turns with "
                "create_session=true.")
    if isinstance(exc, ConflictError):
        if exc.problem.get("type", "").endswith("/session-deleted"):
            return (f"Conflict: {exc.detail}. The session is deleted (it can be read, not written): use another "
                    "session, or ask the user to undelete this one.")
        return (f"Conflict: {exc.detail}. The current state forbids this: read the state again (list_sessions, "
                "list_memories) and decide; do not retry unchanged.")
    if isinstance(exc, AuthError):
        return (f"Engram refused the key ({exc.status} {exc.title}: {exc.detail}). This is a setting of the MCP "
                "server, not of the call: the user must set ENGRAM_API_KEY to a key of this namespace.")
    if exc.status == 413:
        return f"Too large: {exc.detail}. Send fewer or shorter turns per call."
    if exc.status == 429 or exc.status >= 500:
        return f"Engram is busy or failing ({exc.status} {exc.title}: {exc.detail}). Nothing is known to be done; " \
               "retry in a few seconds."
    return f"Engram refused the request ({exc.status} {exc.title}: {exc.detail}). Correct the arguments and retry."


@contextmanager
def engram_errors() -> Iterator[None]:
    """Raise every ``EngramError`` of the block as a ``ToolError`` with the text of ``explain``."""
    try:
        yield
    except EngramError as exc:
        raise ToolError(explain(exc)) from exc
