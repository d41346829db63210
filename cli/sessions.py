"""`engram sessions create|list|show|update|delete|undelete NS NAME`, and the verbs on a session's
participants: bind, unbind, participants, insights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.output import Out, Usage, json_object, kv, listing, table
from cli.verbs import AGENT, GROUP, NS, PLAIN, SESSION, AllOpt, CursorOpt, LimitOpt, verb

if TYPE_CHECKING:
    from engram_client import Session

group = typer.Typer(help="Activity sessions: create, list, show, update, delete, undelete.", **GROUP)
top = typer.Typer(**PLAIN)  # verbs at the top level of `engram`


def _session(out: Out, s: Session, title: str | None = None) -> None:
    if out.json:
        return out.body()
    kv(out, [("name", s.name), ("description", s.description), ("participants", s.participants),
              ("turn_count", s.turn_count), ("generation", s.generation), ("data", s.data),
              ("created_at", s.created_at), ("updated_at", s.updated_at), ("deleted_at", s.deleted_at),
              ("expire_time", s.expire_time)], title=title)


@verb(group, "create")
def sessions_create(out: Out, ns: NS,
                    name: Annotated[str | None, typer.Argument(help="Session name; omit for a generated one.")] = None,
                    description: Annotated[str, typer.Option(help="What the session is about.")] = "",
                    data: Annotated[str | None, typer.Option(help="JSON object kept with the session.")] = None,
                    ) -> None:
    """Create a session."""
    _session(out, out.client.create_session(ns, name, description, json_object(data, "--data")), "session created")


@verb(group, "list")
def sessions_list(out: Out, ns: NS,
                  include_deleted: Annotated[bool, typer.Option(help="Also list soft-deleted sessions.")] = False,
                  limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List sessions in creation order."""
    listing(out, out.client.list_sessions, (ns,), lambda items: table(
        out, ["name", "participants", "turns", "generation", "created_at", "deleted_at"],
        [[s.name, s.participants, s.turn_count, s.generation, s.created_at, s.deleted_at] for s in items],
        "sessions"), limit, cursor, all_, include_deleted=include_deleted)


@verb(group, "show")
def sessions_show(out: Out, ns: NS, name: SESSION) -> None:
    """Show a session (soft-deleted ones too)."""
    _session(out, out.client.get_session(ns, name))


@verb(group, "update")
def sessions_update(out: Out, ns: NS, name: SESSION,
                    description: Annotated[str | None, typer.Option(help="New description.")] = None,
                    data: Annotated[str | None, typer.Option(help="JSON merge patch of data (null removes).")] = None,
                    if_match: Annotated[str | None, typer.Option(help="ETag: update only if unchanged.")] = None,
                    ) -> None:
    """Merge-patch a session's description and data."""
    patch: dict[str, Any] = {}
    if description is not None:
        patch["description"] = description
    if data is not None:
        patch["data"] = json_object(data, "--data")
    if not patch:
        raise Usage("nothing to update: give --description and/or --data")
    _session(out, out.client.update_session(ns, name, patch, if_match=if_match), "session updated")


@verb(group, "delete")
def sessions_delete(out: Out, ns: NS, name: SESSION) -> None:
    """Soft-delete a session (undelete restores it until its expire_time)."""
    _session(out, out.client.delete_session(ns, name), "session deleted")


@verb(group, "undelete")
def sessions_undelete(out: Out, ns: NS, name: SESSION) -> None:
    """Restore a soft-deleted session."""
    _session(out, out.client.undelete_session(ns, name), "session restored")


@verb(top, "bind")
def bind(out: Out, ns: NS, session: SESSION, agent: AGENT) -> None:
    """Bind an agent to a session: it sees the turns appended from now on."""
    p = out.client.bind(ns, session, agent)
    if out.json:
        return out.body()
    again = out.status() == 200
    out.line(f"{p.name} {'was already' if again else 'is now'} bound to {session}")


@verb(top, "unbind")
def unbind(out: Out, ns: NS, session: SESSION, agent: AGENT) -> None:
    """Unbind a participant (its insights and the agent's memories stay)."""
    out.client.unbind(ns, session, agent)
    if not out.json:
        out.line(f"{agent} unbound from {session}")


@verb(top, "participants")
def participants(out: Out, ns: NS, session: SESSION) -> None:
    """List a session's participants with their watermark and pending turns."""
    page = out.client.list_participants(ns, session)
    if out.json:
        return out.body()
    table(out, ["name", "bound_at", "last_integration_turn", "pending_turns"],
          [[p.name, p.bound_at, p.last_integration_turn, p.pending_turns] for p in page.items], "participants")


@verb(top, "insights")
def insights(out: Out, ns: NS, session: SESSION, agent: AGENT, limit: LimitOpt = None, cursor: CursorOpt = None,
             all_: AllOpt = False) -> None:
    """List the insights integrations drew for a participant of a session."""
    listing(out, out.client.list_insights, (ns, session, agent), lambda items: table(
        out, ["id", "importance", "evidence", "content"], [[i.id, i.importance, i.evidence, i.content] for i in items],
        f"insights of {agent} in {session}"), limit, cursor, all_)
