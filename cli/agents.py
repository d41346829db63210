"""`engram agents put|list|show|delete|memories NS AGENT`: agents and their long-term memories."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import Out, json_object, kv, listing, table
from cli.verbs import AGENT, GROUP, NS, AllOpt, CursorOpt, LimitOpt, verb

group = typer.Typer(help="Agents of a namespace and their long-term memories.", **GROUP)


@verb(group, "put")
def agents_put(out: Out, ns: NS, agent: AGENT,
               description: Annotated[str, typer.Option(help="Who the agent is (given to the integrator).")] = "",
               metadata: Annotated[str | None, typer.Option(help="JSON object.")] = None) -> None:
    """Create an agent, or replace its description and metadata."""
    a = out.client.put_agent(ns, agent, description, json_object(metadata, "--metadata"))
    if out.json:
        return out.body()
    created = out.status() == 201
    kv(out, [("name", a.name), ("description", a.description), ("metadata", a.metadata),
             ("created_at", a.created_at)], title=f"agent {'created' if created else 'updated'}")


@verb(group, "list")
def agents_list(out: Out, ns: NS, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a namespace's agents."""
    listing(out, out.client.list_agents, (ns,), lambda items: table(
        out, ["name", "description", "created_at"], [[a.name, a.description, a.created_at] for a in items],
        "agents"), limit, cursor, all_)


@verb(group, "show")
def agents_show(out: Out, ns: NS, agent: AGENT) -> None:
    """Show an agent."""
    a = out.client.get_agent(ns, agent)
    if out.json:
        return out.body()
    kv(out, [("name", a.name), ("description", a.description), ("metadata", a.metadata),
             ("created_at", a.created_at), ("updated_at", a.updated_at)])


@verb(group, "delete")
def agents_delete(out: Out, ns: NS, agent: AGENT) -> None:
    """Delete an agent with its memories, insights and participations."""
    out.client.delete_agent(ns, agent)
    if not out.json:
        out.line(f"agent {agent} deleted")


@verb(group, "memories")
def agents_memories(out: Out, ns: NS, agent: AGENT, limit: LimitOpt = None, cursor: CursorOpt = None,
                    all_: AllOpt = False) -> None:
    """List an agent's memory stream (observations and reflections), newest first."""
    listing(out, out.client.list_memories, (ns, agent), lambda items: table(
        out, ["id", "kind", "importance", "session", "evidence", "content"],
        [[m.id, m.kind.value, m.importance, m.session, m.evidence,
          f"{m.speaker}: {m.content}" if m.speaker else m.content] for m in items], f"memories of {agent}"),
        limit, cursor, all_)
