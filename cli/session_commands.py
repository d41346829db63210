"""`engram sessions …`, bind/unbind, participants and insights (see cli/client_commands.py)."""

from typing import Annotated, Any

import typer

from cli.client_commands import (
    AGENT, NS, SESSION, AllOpt, CursorOpt, LimitOpt, Out, Usage, _json_object, _kv, _list, _table, sessions_app, verb,
)

# ------------------------------------------------------------------------------------------ sessions


def _session(out: Out, s: Any, title: str | None = None) -> None:
    if out.json:
        return out.body()
    _kv(out, [("name", s.name), ("description", s.description), ("participants", s.participants),
              ("turn_count", s.turn_count), ("generation", s.generation), ("data", s.data),
              ("created_at", s.created_at), ("updated_at", s.updated_at), ("deleted_at", s.deleted_at),
              ("expire_time", s.expire_time)], title=title)


@verb(sessions_app, "create")
def sessions_create(out: Out, ns: NS,
                    name: Annotated[str | None, typer.Argument(help="Session name; omit for a generated one.")] = None,
                    description: Annotated[str, typer.Option(help="What the session is about.")] = "",
                    data: Annotated[str | None, typer.Option(help="JSON object kept with the session.")] = None,
                    ) -> None:
    """Create a session."""
    _session(out, out.client.create_session(ns, name, description, _json_object(data, "--data")), "session created")


@verb(sessions_app, "list")
def sessions_list(out: Out, ns: NS,
                  include_deleted: Annotated[bool, typer.Option(help="Also list soft-deleted sessions.")] = False,
                  limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List sessions in creation order."""
    _list(out, out.client.list_sessions, (ns,), lambda items: _table(
        out, ["name", "participants", "turns", "generation", "created_at", "deleted_at"],
        [[s.name, s.participants, s.turn_count, s.generation, s.created_at, s.deleted_at] for s in items],
        "sessions"), limit, cursor, all_, include_deleted=include_deleted)


@verb(sessions_app, "show")
def sessions_show(out: Out, ns: NS, name: SESSION) -> None:
    """Show a session (soft-deleted ones too)."""
    _session(out, out.client.get_session(ns, name))


@verb(sessions_app, "update")
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
        patch["data"] = _json_object(data, "--data")
    if not patch:
        raise Usage("nothing to update: give --description and/or --data")
    _session(out, out.client.update_session(ns, name, patch, if_match=if_match), "session updated")


@verb(sessions_app, "delete")
def sessions_delete(out: Out, ns: NS, name: SESSION) -> None:
    """Soft-delete a session (undelete restores it until its expire_time)."""
    _session(out, out.client.delete_session(ns, name), "session deleted")


@verb(sessions_app, "undelete")
def sessions_undelete(out: Out, ns: NS, name: SESSION) -> None:
    """Restore a soft-deleted session."""
    _session(out, out.client.undelete_session(ns, name), "session restored")


@verb(None, "bind")
def bind(out: Out, ns: NS, session: SESSION, agent: AGENT) -> None:
    """Bind an agent to a session: it sees the turns appended from now on."""
    p = out.client.bind(ns, session, agent)
    if out.json:
        return out.body()
    again = out.client.last_response.status_code == 200  # type: ignore[union-attr]
    out.console.print(f"{p.name} {'was already' if again else 'is now'} bound to {session}", markup=False)


@verb(None, "unbind")
def unbind(out: Out, ns: NS, session: SESSION, agent: AGENT) -> None:
    """Unbind a participant (its insights and the agent's memories stay)."""
    out.client.unbind(ns, session, agent)
    if not out.json:
        out.console.print(f"{agent} unbound from {session}", markup=False)


@verb(None, "participants")
def participants(out: Out, ns: NS, session: SESSION) -> None:
    """List a session's participants with their watermark and pending turns."""
    page = out.client.list_participants(ns, session)
    out.body() if out.json else _table(
        out, ["name", "bound_at", "last_integration_turn", "pending_turns"],
        [[p.name, p.bound_at, p.last_integration_turn, p.pending_turns] for p in page.items], "participants")


@verb(None, "insights")
def insights(out: Out, ns: NS, session: SESSION, agent: AGENT, limit: LimitOpt = None, cursor: CursorOpt = None,
             all_: AllOpt = False) -> None:
    """List the insights integrations drew for a participant of a session."""
    _list(out, out.client.list_insights, (ns, session, agent), lambda items: _table(
        out, ["id", "importance", "evidence", "content"], [[i.id, i.importance, i.evidence, i.content] for i in items],
        f"insights of {agent} in {session}"), limit, cursor, all_)
