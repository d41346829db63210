"""How the `engram` command speaks: exit codes, errors on stderr, rich tables for people, the API's
JSON body as is for scripts (--json).

rich is imported only when a table or a progress bar is drawn: a verb that prints JSON or an error
starts without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from engram_client import EngramAPIError, EngramClient

# Exit codes (scripts rely on them; the README lists them).
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_API, EXIT_CONNECT, EXIT_TIMEOUT = range(8)
EXIT_INTERRUPTED = 130

EPILOG = ("Exit codes: 0 ok, 1 job failed or cancelled, 2 usage error, 3 not found, 4 conflict, "
          "5 other API error, 6 cannot connect, 7 timeout while waiting, 130 interrupted.")


class Usage(Exception):
    """A usage error found by a verb: exit 2."""


def error(message: str) -> None:
    """``error: <message>`` on stderr."""
    typer.echo(f"error: {message}", err=True)


def fail(message: str) -> NoReturn:
    """A process command cannot start: say why, in red, and exit 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(EXIT_USAGE)


def api_error(exc: EngramAPIError) -> None:
    """An API error on stderr: its detail, then the invalid fields, then a hint for auth errors."""
    from engram_client import AuthError

    error(exc.detail)
    for e in exc.errors[:10]:
        loc = ".".join(str(p) for p in e.get("loc", []))
        typer.echo(f"  {loc}: {e.get('msg', '')}", err=True)
    if isinstance(exc, AuthError):
        typer.echo("  (pass --key or set ENGRAM_API_KEY)", err=True)


class Out:
    """What a verb prints to, with the client whose answers it prints."""

    def __init__(self, client: EngramClient, as_json: bool) -> None:
        self.client, self.json = client, as_json

    @cached_property
    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False)

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False)

    def status(self) -> int:
        """The HTTP status of the latest answer."""
        r = self.client.last_response
        return r.status_code if r is not None else 0

    def answer(self) -> Any:
        """The JSON body of the latest answer, parsed."""
        r = self.client.last_response
        return r.json() if r is not None else None

    def body(self) -> None:
        """Print the JSON body of the latest answer, exactly as the API sent it."""
        r = self.client.last_response
        typer.echo(r.text if r is not None else "null")

    def dump(self, data: Any) -> None:
        typer.echo(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    def note(self, message: str) -> None:
        from rich.text import Text

        self.err.print(Text(message, style="dim"))

    def line(self, message: str) -> None:
        """One plain line on stdout (no rich markup is read in it)."""
        self.console.print(message, markup=False)


def fmt(value: Any) -> str:
    """A value as a table cell."""
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


def table(out: Out, columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """Rows under a header; a dim ``no <title>`` on stderr when there are none."""
    if not rows:
        out.note(f"no {title or 'items'}")
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
              collapse_padding=True)
    for column in columns:
        # Never cut a value: ids and short words stay on one line, the rest wraps.
        t.add_column(column, no_wrap=column in _NO_WRAP, overflow="fold", min_width=min(len(column), 12))
    for row in rows:
        t.add_row(*(Text(fmt(v)) for v in row))
    out.console.print(t)


def kv(out: Out, pairs: list[tuple[str, Any]], title: str | None = None) -> None:
    """One record as ``key value`` lines."""
    from rich.table import Table
    from rich.text import Text

    t = Table(show_header=False, title=title, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in pairs:
        t.add_row(k, Text(fmt(v)))
    out.console.print(t)


def listing(out: Out, lister: Callable[..., Any], args: tuple[Any, ...], render: Callable[[list[Any]], None],
            limit: int | None, cursor: str | None, everything: bool, **filters: Any) -> None:
    """One page (or all of them with --all): the raw body for --json, else ``render(items)``."""
    items: list[Any] = []
    raw: list[Any] = []
    while True:
        page = lister(*args, limit=limit, cursor=cursor, **filters)
        items += page.items
        raw += out.answer()["items"]
        cursor = page.next_cursor
        if not everything or not cursor:
            break
    if out.json:
        if everything:
            out.dump({"items": raw, "next_cursor": None})
        else:
            out.body()
        return
    render(items)
    if cursor:
        out.note(f"more: --cursor {cursor} (or --all)")


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """The JSON object given to ``option``, or a usage error."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Usage(f"{option} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise Usage(f"{option} must be a JSON object")
    return value
