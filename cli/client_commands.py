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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from client import (
    AuthError, ConflictError, EngramAPIError, EngramClient, EngramConnectionError, JobTimeoutError,
    NotFoundError,
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


def register(app: typer.Typer) -> None:
    """Add the client verbs to the `engram` app."""
    # The verbs of these modules register themselves on the groups above when imported.
    import cli.job_commands  # noqa: F401
    import cli.session_commands  # noqa: F401

    for sub, name in ((ns_app, "ns"), (keys_app, "keys"), (agents_app, "agents"), (sessions_app, "sessions"),
                      (turns_app, "turns"), (jobs_app, "jobs")):
        app.add_typer(sub, name=name)
    for name, command in _ROOT:
        app.command(name, epilog=EPILOG)(command)
