"""Client verbs of the `engram` command: talk to a running Engram API.

    engram ns put|list|show            engram keys create|list|delete NS
    engram agents put|list|show|delete|memories NS AGENT
    engram sessions create|list|show|update|delete|undelete NS NAME
    engram bind|unbind NS SESSION AGENT engram participants NS SESSION
    engram insights NS SESSION AGENT    engram turns append|list NS SESSION
    engram integrate|truncate NS SESSION --wait
    engram jobs list|show|watch|cancel NS JOB

Every verb takes --url (env ENGRAM_URL, default http://127.0.0.1:8000), --key (env ENGRAM_API_KEY,
else ENGRAM_ADMIN_KEY) and --json (print the API's JSON body as is, for scripts; human output
is rich tables; deletes print nothing with --json, the API answers 204). Errors go to stderr as
`error: <detail>`. Lists show one page (--limit, --cursor) or everything (--all).

Exit codes (scripts can rely on them):
    0    success
    1    the job finished failed or cancelled (integrate/truncate --wait, jobs watch)
    2    usage error (bad arguments, unreadable or invalid turns file)
    3    not found (404)
    4    conflict (409): name taken, session deleted, job already finished, ...
    5    any other API error (401/403, 412, 413, 422, 5xx)
    6    cannot connect to the API
    7    timed out waiting for a job (the job itself goes on)
    130  interrupted (Ctrl-C); a job being waited on goes on
"""

import functools
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pydantic
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from client import (
    AuthError, ConflictError, EngramAPIError, EngramClient, EngramConnectionError, Job, JobHandle, JobTimeoutError,
    NotFoundError, TurnIn,
)

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_API, EXIT_CONNECT, EXIT_TIMEOUT = range(8)
EXIT_INTERRUPTED = 130
MAX_BATCH = 500  # turns per append request
MAX_BATCH_BYTES = 3 * 1024 * 1024  # below the API's default 4 MiB body limit

EPILOG = ("Exit codes: 0 ok, 1 job failed or cancelled, 2 usage error, 3 not found, 4 conflict, "
          "5 other API error, 6 cannot connect, 7 timeout while waiting, 130 interrupted.")


def make_client(url: str | None, key: str | None) -> EngramClient:
    """How every verb gets its client (tests replace it)."""
    return EngramClient(base_url=url, api_key=key)


class Usage(Exception):
    """A usage error found by a verb: exit 2."""


@dataclass
class Out:
    client: EngramClient
    json: bool
    console: Console
    err: Console

    def body(self) -> None:
        """Print the JSON body of the latest answer, exactly as the API sent it."""
        r = self.client.last_response
        typer.echo(r.text if r is not None else "null")

    def dump(self, data: Any) -> None:
        typer.echo(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    def note(self, message: str) -> None:
        self.err.print(Text(message, style="dim"))


# ------------------------------------------------------------------------------------------ plumbing

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="ENGRAM_URL", show_envvar=True,
                                            rich_help_panel="Connection",
                                            help="API base URL (default http://127.0.0.1:8000).")]
KeyOpt = Annotated[str | None, typer.Option("--key", envvar=["ENGRAM_API_KEY", "ENGRAM_ADMIN_KEY"], show_envvar=True,
                                            rich_help_panel="Connection", show_default=False,
                                            help="Bearer key: a namespace key or the admin key.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON body (for scripts).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, max=200, help="Page size (API default 50).")]
CursorOpt = Annotated[str | None, typer.Option("--cursor", help="`next_cursor` of the previous page.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Follow next_cursor and list everything.")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Follow the job with a progress bar until it finishes.")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", min=0, help="Seconds to wait at most (exit 7 after).")]
IdemOpt = Annotated[str | None, typer.Option("--idempotency-key",
                                             help="Retry-safe key: a repeat answers like the first.")]
NS = Annotated[str, typer.Argument(help="Namespace.", show_default=False)]
SESSION = Annotated[str, typer.Argument(help="Session name.", show_default=False)]
AGENT = Annotated[str, typer.Argument(help="Agent name.", show_default=False)]
JOB = Annotated[str, typer.Argument(help="Job id.", show_default=False)]

_ROOT: list[tuple[str, Callable[..., Any]]] = []  # top-level verbs, added to the app by register()


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _api_error(exc: EngramAPIError) -> None:
    _error(exc.detail)
    for e in exc.errors[:10]:
        loc = ".".join(str(p) for p in e.get("loc", []))
        typer.echo(f"  {loc}: {e.get('msg', '')}", err=True)
    if isinstance(exc, AuthError):
        typer.echo("  (pass --key or set ENGRAM_API_KEY)", err=True)


def _run(fn: Callable[..., int | None], url: str | None, key: str | None, as_json: bool,
         args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    client = make_client(url, key)
    out = Out(client, as_json, Console(highlight=False), Console(stderr=True, highlight=False))
    try:
        return fn(out, *args, **kwargs) or EXIT_OK
    except Usage as exc:
        _error(str(exc))
        return EXIT_USAGE
    except NotFoundError as exc:
        _api_error(exc)
        return EXIT_NOT_FOUND
    except ConflictError as exc:
        _api_error(exc)
        return EXIT_CONFLICT
    except EngramAPIError as exc:
        _api_error(exc)
        return EXIT_API
    except EngramConnectionError as exc:
        _error(f"{exc} (is the API running? set --url or ENGRAM_URL)")
        return EXIT_CONNECT
    except JobTimeoutError as exc:
        _error(str(exc))
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        client.close()


def verb(target: typer.Typer | None, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(out, ...)`` as a command of ``target`` (None: top level), adding --url, --key, --json."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]  # without `out`
        extra = [inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UrlOpt),
                 inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=KeyOpt),
                 inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt)]

        @functools.wraps(fn)
        def command(*args: Any, url: str | None = None, key: str | None = None, as_json: bool = False,
                    **kwargs: Any) -> None:
            code = _run(fn, url, key, as_json, args, kwargs)
            if code:
                raise typer.Exit(code)

        command.__signature__ = inspect.Signature(params + extra)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params + extra}
        cmd_name = name or fn.__name__.rstrip("_").replace("_", "-")
        if target is None:
            _ROOT.append((cmd_name, command))
        else:
            target.command(cmd_name, epilog=EPILOG)(command)
        return fn

    return deco


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False) if value else "{}"
    return str(value)


_NO_WRAP = {"id", "kind", "status", "seq"}


def _table(out: Out, columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    if not rows:
        out.note(f"no {title or 'items'}")
        return
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for column in columns:
        # Never cut a value: ids and short words stay on one line, the rest wraps.
        table.add_column(column, no_wrap=column in _NO_WRAP, overflow="fold", min_width=min(len(column), 12))
    for row in rows:
        table.add_row(*(Text(_fmt(v)) for v in row))
    out.console.print(table)


def _kv(out: Out, pairs: list[tuple[str, Any]], title: str | None = None) -> None:
    table = Table(show_header=False, title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in pairs:
        table.add_row(k, Text(_fmt(v)))
    out.console.print(table)


def _list(out: Out, lister: Callable[..., Any], args: tuple[Any, ...], render: Callable[[list[Any]], None],
          limit: int | None, cursor: str | None, everything: bool, **filters: Any) -> None:
    """One page (or all of them with --all): the raw body for --json, else ``render(items)``."""
    items, raw = [], []
    while True:
        page = lister(*args, limit=limit, cursor=cursor, **filters)
        items += page.items
        raw += out.client.last_response.json()["items"]  # type: ignore[union-attr]
        cursor = page.next_cursor
        if not everything or not cursor:
            break
    if out.json:
        out.body() if not everything else out.dump({"items": raw, "next_cursor": None})
        return
    render(items)
    if cursor:
        out.note(f"more: --cursor {cursor} (or --all)")


def _json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Usage(f"{option} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise Usage(f"{option} must be a JSON object")
    return value


# ------------------------------------------------------------------------------------------ namespaces, keys

_GROUP = dict(no_args_is_help=True, epilog=EPILOG)
ns_app = typer.Typer(help="Namespaces: the tenants (admin key to create).", **_GROUP)
keys_app = typer.Typer(help="Namespace keys (admin only): create, list, revoke.", **_GROUP)
agents_app = typer.Typer(help="Agents of a namespace and their long-term memories.", **_GROUP)
sessions_app = typer.Typer(help="Activity sessions: create, list, show, update, delete, undelete.", **_GROUP)
turns_app = typer.Typer(help="Turns of a session: append from a JSON/JSONL file or stdin, list.", **_GROUP)
jobs_app = typer.Typer(help="Jobs of integrate/truncate: list, show, watch, cancel.", **_GROUP)


def _ns_rows(items: list[Any]) -> list[list[Any]]:
    return [[n.name, n.description, n.created_at] for n in items]


@verb(ns_app, "put")
def ns_put(out: Out, name: Annotated[str, typer.Argument(help="Namespace name (a slug).")],
           description: Annotated[str, typer.Option(help="What it is for.")] = "") -> None:
    """Create a namespace, or replace its description (idempotent)."""
    ns = out.client.put_namespace(name, description)
    if out.json:
        return out.body()
    created = out.client.last_response.status_code == 201  # type: ignore[union-attr]
    _kv(out, [("name", ns.name), ("description", ns.description), ("created_at", ns.created_at)],
        title=f"namespace {'created' if created else 'updated'}")


@verb(ns_app, "list")
def ns_list(out: Out, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List namespaces (all for the admin key, its own for a namespace key)."""
    _list(out, out.client.list_namespaces, (), lambda items: _table(
        out, ["name", "description", "created_at"], _ns_rows(items), "namespaces"), limit, cursor, all_)


@verb(ns_app, "show")
def ns_show(out: Out, name: NS) -> None:
    """Show a namespace."""
    ns = out.client.get_namespace(name)
    out.body() if out.json else _table(out, ["name", "description", "created_at"], _ns_rows([ns]))


@verb(keys_app, "create")
def keys_create(out: Out, ns: NS, description: Annotated[str, typer.Option(help="What the key is for.")] = "") -> None:
    """Issue a namespace key. Its secret is shown once."""
    key = out.client.create_key(ns, description)
    if out.json:
        return out.body()
    _kv(out, [("id", key.id), ("description", key.description), ("created_at", key.created_at),
              ("secret", key.secret)], title="key created")
    out.err.print("Store the secret now: it is shown only once.", style="yellow")


@verb(keys_app, "list")
def keys_list(out: Out, ns: NS, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a namespace's keys (never their secrets)."""
    _list(out, out.client.list_keys, (ns,), lambda items: _table(
        out, ["id", "description", "created_at"], [[k.id, k.description, k.created_at] for k in items], "keys"),
        limit, cursor, all_)


@verb(keys_app, "delete")
def keys_delete(out: Out, ns: NS, key_id: Annotated[str, typer.Argument(help="Key id (key_…).")]) -> None:
    """Revoke a key at once."""
    out.client.delete_key(ns, key_id)
    if not out.json:
        out.console.print(f"key {key_id} revoked", markup=False)


# ------------------------------------------------------------------------------------------ agents


@verb(agents_app, "put")
def agents_put(out: Out, ns: NS, agent: AGENT,
               description: Annotated[str, typer.Option(help="Who the agent is (given to the integrator).")] = "",
               metadata: Annotated[str | None, typer.Option(help="JSON object.")] = None) -> None:
    """Create an agent, or replace its description and metadata."""
    a = out.client.put_agent(ns, agent, description, _json_object(metadata, "--metadata"))
    if out.json:
        return out.body()
    created = out.client.last_response.status_code == 201  # type: ignore[union-attr]
    _kv(out, [("name", a.name), ("description", a.description), ("metadata", a.metadata),
              ("created_at", a.created_at)], title=f"agent {'created' if created else 'updated'}")


@verb(agents_app, "list")
def agents_list(out: Out, ns: NS, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a namespace's agents."""
    _list(out, out.client.list_agents, (ns,), lambda items: _table(
        out, ["name", "description", "created_at"], [[a.name, a.description, a.created_at] for a in items],
        "agents"), limit, cursor, all_)


@verb(agents_app, "show")
def agents_show(out: Out, ns: NS, agent: AGENT) -> None:
    """Show an agent."""
    a = out.client.get_agent(ns, agent)
    out.body() if out.json else _kv(out, [("name", a.name), ("description", a.description),
                                          ("metadata", a.metadata), ("created_at", a.created_at),
                                          ("updated_at", a.updated_at)])


@verb(agents_app, "delete")
def agents_delete(out: Out, ns: NS, agent: AGENT) -> None:
    """Delete an agent with its memories, insights and participations."""
    out.client.delete_agent(ns, agent)
    if not out.json:
        out.console.print(f"agent {agent} deleted", markup=False)


@verb(agents_app, "memories")
def agents_memories(out: Out, ns: NS, agent: AGENT, limit: LimitOpt = None, cursor: CursorOpt = None,
                    all_: AllOpt = False) -> None:
    """List an agent's long-term memories, newest first."""
    _list(out, out.client.list_memories, (ns, agent), lambda items: _table(
        out, ["id", "importance", "session", "evidence", "content"],
        [[m.id, m.importance, m.session, m.evidence, m.content] for m in items], f"memories of {agent}"),
        limit, cursor, all_)


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


# ------------------------------------------------------------------------------------------ turns


def read_turns(source: str | None) -> list[dict[str, Any]]:
    """Turns from a file or stdin: {"turns": [...]}, a JSON list, or JSONL (one turn per line)."""
    if source in (None, "-"):
        if sys.stdin.isatty():
            typer.echo("reading turns from stdin (JSONL, Ctrl-D to end)", err=True)
        name, text = "stdin", sys.stdin.read()
    else:
        path = Path(source)  # type: ignore[arg-type]
        try:
            name, text = source, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Usage(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None  # not one JSON document: JSONL
    if isinstance(doc, dict) and "turns" in doc:
        doc = doc["turns"]
    if isinstance(doc, list):
        where, turns = [f"{name}: turns[{i}]" for i in range(len(doc))], doc
    elif isinstance(doc, dict):
        where, turns = [f"{name}:1"], [doc]
    else:
        where, turns = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    turns.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise Usage(f"{name}:{lineno}: not valid JSON ({exc.msg})") from None
                where.append(f"{name}:{lineno}")
    if not turns:
        raise Usage(f"{name}: no turns (expected {{\"turns\": [...]}}, a JSON list, or JSONL)")
    for turn, at in zip(turns, where, strict=True):
        try:
            TurnIn.model_validate(turn)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "turn"
            raise Usage(f"{at}: {field}: {first['msg']}") from None
    return turns


def batches(turns: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """At most ``size`` turns and about MAX_BATCH_BYTES of JSON per request."""
    out: list[list[dict[str, Any]]] = [[]]
    weight = 0
    for turn in turns:
        w = len(json.dumps(turn, ensure_ascii=False).encode()) + 1
        if out[-1] and (len(out[-1]) >= size or weight + w > MAX_BATCH_BYTES):
            out.append([])
            weight = 0
        out[-1].append(turn)
        weight += w
    return out


@verb(turns_app, "append")
def turns_append(out: Out, ns: NS, session: SESSION,
                 file: Annotated[str | None, typer.Argument(help="JSON or JSONL file; `-` or none: stdin.",
                                                            show_default=False)] = None,
                 idempotency_key: IdemOpt = None,
                 batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Turns per request.")] = MAX_BATCH,
                 ) -> None:
    """Append turns; each request is atomic. With several batches, --idempotency-key K sends K-1, K-2, ...
    so a re-run with the same file and key resumes where it stopped."""
    groups = batches(read_turns(file), batch_size)
    first, last, raw = None, None, []
    done = 0
    for i, group in enumerate(groups, 1):
        key = idempotency_key if not idempotency_key or len(groups) == 1 else f"{idempotency_key}-{i}"
        try:
            res = out.client.append_turns(ns, session, group, idempotency_key=key)
        except EngramAPIError:
            if done:
                _error(f"batch {i} of {len(groups)} failed; turns seq {first}-{last} were appended before it "
                       f"(re-run with the same --idempotency-key to resume safely)")
            raise
        first = res.first_seq if first is None else first
        last, done = res.last_seq, done + len(group)
        raw += out.client.last_response.json()["turns"]  # type: ignore[union-attr]
        if len(groups) > 1 and not out.json:
            out.note(f"batch {i}/{len(groups)}: seq {res.first_seq}-{res.last_seq}")
    if out.json:
        return out.body() if len(groups) == 1 else out.dump({"first_seq": first, "last_seq": last, "turns": raw})
    out.console.print(f"appended {done} turn{'s' * (done != 1)} to {session}: seq {first}-{last}", markup=False)


@verb(turns_app, "list")
def turns_list(out: Out, ns: NS, session: SESSION,
               participant: Annotated[str | None, typer.Option(help="Only what this participant sees.")] = None,
               after_seq: Annotated[int | None, typer.Option(min=0, help="Only turns after this seq.")] = None,
               limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a session's turns in seq order."""
    _list(out, out.client.list_turns, (ns, session), lambda items: _table(
        out, ["seq", "speaker", "visible_to", "content"],
        [[t.seq, t.speaker, t.visible_to or "all", t.content] for t in items], "turns"),
        limit, cursor, all_, participant=participant, after_seq=after_seq)


# ------------------------------------------------------------------------------------------ jobs


def _job(out: Out, job: Job, title: str | None = None) -> None:
    error = (job.error or {}).get("detail") if job.error else None
    _kv(out, [("id", job.id), ("kind", job.kind), ("status", job.status), ("session", job.session),
              ("progress", f"{job.progress.completed}/{job.progress.total}"), ("attempts", job.attempts),
              ("cancel_requested", job.cancel_requested), ("created_at", job.created_at),
              ("started_at", job.started_at), ("finished_at", job.finished_at), ("error", error)], title=title)
    _result(out, job)


def _result(out: Out, job: Job) -> None:
    result = job.result or {}
    if job.kind == "integrate" and "participants" in result:
        _table(out, ["participant", "turns_integrated", "insights_created", "memories_created", "watermark"],
               [[p.get("name"), p.get("turns_integrated"), p.get("insights_created"), p.get("memories_created"),
                 p.get("watermark")] for p in result["participants"]], "participants integrated")
    elif result:
        _kv(out, sorted(result.items()), title="result")


def _finished(job: Job) -> int:
    if job.status == "succeeded":
        return EXIT_OK
    detail = (job.error or {}).get("detail") or "no detail"
    _error(f"job {job.id} was cancelled" if job.status == "cancelled" else f"job {job.id} failed: {detail}")
    return EXIT_JOB_FAILED


def _follow(out: Out, handle: JobHandle, timeout: float | None) -> int:
    """Wait for the job (a progress bar for people), print it, and exit 0, 1 (failed/cancelled) or 7."""
    try:
        if out.json:
            job = handle.wait(timeout=timeout)
        else:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())
            with Progress(*columns, console=out.err) as bar:
                task = bar.add_task(f"{handle.job.kind} {handle.job.session}", total=None)

                def show(job: Job) -> None:
                    bar.update(task, completed=job.progress.completed, total=job.progress.total or None,
                               description=f"{job.kind} {job.session}: {job.status}")

                job = handle.wait(timeout=timeout, on_progress=show)
    except JobTimeoutError as exc:
        if out.json:
            out.body()  # the job's last state, as the API sent it
        _error(f"{exc}; it goes on: `engram jobs watch {handle.namespace} {handle.id}`")
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        _error(f"interrupted; job {handle.id} goes on: `engram jobs watch {handle.namespace} {handle.id}`")
        return EXIT_INTERRUPTED
    if out.json:
        out.body()
    else:
        _job(out, job, title=f"job {job.status}")
    return _finished(job)


def _start(out: Out, ns: str, session: str, kind: str, wait: bool, timeout: float | None, key: str | None) -> int:
    start = out.client.integrate if kind == "integrate" else out.client.truncate
    handle = start(ns, session, idempotency_key=key)
    if handle.coalesced and not out.json:
        out.note(f"an integration of {session} is already queued: following job {handle.id}")
    if wait:
        return _follow(out, handle, timeout)
    if out.json:
        out.body()
    else:
        _job(out, handle.job, title=f"{kind} accepted")
        out.note(f"follow it: engram jobs watch {ns} {handle.id}")
    return EXIT_OK


@verb(None, "integrate")
def integrate(out: Out, ns: NS, session: SESSION, wait: WaitOpt = False, timeout: TimeoutOpt = None,
              idempotency_key: IdemOpt = None) -> int:
    """Integrate the session's new turns into its participants' insights and memories."""
    return _start(out, ns, session, "integrate", wait, timeout, idempotency_key)


@verb(None, "truncate")
def truncate(out: Out, ns: NS, session: SESSION, wait: WaitOpt = False, timeout: TimeoutOpt = None,
             idempotency_key: IdemOpt = None) -> int:
    """Reset a session: turns, data and insights go; participants and memories stay."""
    return _start(out, ns, session, "truncate", wait, timeout, idempotency_key)


@verb(jobs_app, "list")
def jobs_list(out: Out, ns: NS, session: Annotated[str | None, typer.Option(help="Only this session's jobs.")] = None,
              kind: Annotated[str | None, typer.Option(help="integrate or truncate.")] = None,
              status: Annotated[str | None, typer.Option(
                  help="queued, running, succeeded, failed or cancelled.")] = None,
              limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List jobs, newest first."""
    _list(out, out.client.list_jobs, (ns,), lambda items: _table(
        out, ["id", "kind", "status", "progress", "session"],
        [[j.id, j.kind, j.status, f"{j.progress.completed}/{j.progress.total}", j.session] for j in items],
        "jobs (newest first)"), limit, cursor, all_, session=session, kind=kind, status=status)


@verb(jobs_app, "show")
def jobs_show(out: Out, ns: NS, job: JOB) -> None:
    """Show a job and its result."""
    j = out.client.get_job(ns, job)
    out.body() if out.json else _job(out, j)


@verb(jobs_app, "watch")
def jobs_watch(out: Out, ns: NS, job: JOB, timeout: TimeoutOpt = None) -> int:
    """Follow a job with a progress bar until it finishes (exit 1 if it failed or was cancelled)."""
    return _follow(out, out.client.job(ns, job), timeout)


@verb(jobs_app, "cancel")
def jobs_cancel(out: Out, ns: NS, job: JOB) -> None:
    """Cancel a job: a queued one at once, a running one at its next safe point."""
    j = out.client.cancel_job(ns, job)
    if out.json:
        return out.body()
    _job(out, j, title="job cancelled" if j.status == "cancelled"
         else "cancel requested: it stops at its next safe point")


def register(app: typer.Typer) -> None:
    """Add the client verbs to the `engram` app."""
    for sub, name in ((ns_app, "ns"), (keys_app, "keys"), (agents_app, "agents"), (sessions_app, "sessions"),
                      (turns_app, "turns"), (jobs_app, "jobs")):
        app.add_typer(sub, name=name)
    for name, command in _ROOT:
        app.command(name, epilog=EPILOG)(command)
