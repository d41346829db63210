"""`engram recall NS AGENT QUERY`, `engram context NS SESSION AGENT`, `engram forget NS AGENT ID`
and `engram redact NS SESSION SEQ`: what agents remember, and forgetting."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import Out, table
from cli.verbs import AGENT, NS, PLAIN, SESSION, verb

top = typer.Typer(**PLAIN)  # verbs at the top level of `engram`


@verb(top, "recall")
def recall(out: Out, ns: NS, agent: AGENT,
           query: Annotated[str, typer.Argument(help="What to remember, in plain words.", show_default=False)],
           limit: Annotated[int, typer.Option(help="Memories to return (1-100).")] = 10,
           session: Annotated[str | None, typer.Option(help="Only memories from this session.")] = None,
           kind: Annotated[list[str] | None, typer.Option(help="Only this kind: observation or reflection.")] = None,
           ) -> None:
    """Recall an agent's memories most useful for a query, best first, with their evidence."""
    result = out.client.recall(ns, agent, query, limit=limit, session=session, kinds=kind)
    if out.json:
        return out.body()
    table(out, ["score", "kind", "when", "session", "evidence", "memory"],
          [[f"{m.score:.3f}", m.kind.value, f"{m.occurred_at:%Y-%m-%d %H:%M}", m.session, m.evidence,
            f"{m.speaker}: {m.content}" if m.speaker else m.content] for m in result.items],
          f"memories of {agent} for that query")


@verb(top, "context")
def context(out: Out, ns: NS, session: SESSION, agent: AGENT,
            query: Annotated[str | None, typer.Option(help="What to recall for; default: the latest turns.")] = None,
            max_chars: Annotated[int | None, typer.Option(help="Budget of the text (default 8000).")] = None) -> None:
    """Print the context of a participant's next reply: memories, insights and latest turns, ready for a prompt."""
    got = out.client.context(ns, session, agent, query=query, max_chars=max_chars)
    if out.json:
        return out.body()
    out.line(got.text)


@verb(top, "forget")
def forget(out: Out, ns: NS, agent: AGENT,
           memory: Annotated[int, typer.Argument(help="The memory's id.", show_default=False)]) -> None:
    """Forget one memory of an agent."""
    out.client.forget(ns, agent, memory)
    if not out.json:
        out.line(f"memory {memory} of {agent} forgotten")


@verb(top, "redact")
def redact(out: Out, ns: NS, session: SESSION,
           seq: Annotated[int, typer.Argument(help="The turn's seq.", show_default=False)]) -> None:
    """Redact a turn: erase its content and delete every insight and memory that cites it."""
    r = out.client.redact_turn(ns, session, seq)
    if out.json:
        return out.body()
    out.line(f"turn {r.seq} redacted; {r.insights_deleted} insight(s) and {r.memories_deleted} memory(ies) deleted")
