"""How a client verb runs: its common options, its client, and the exit code of each error.

A verb is ``fn(out, ...)`` registered with ``@verb(group, name)``: it gains --url, --key and
--json, and the errors of the client become exit codes (see cli/output.py). The client (httpx,
pydantic) is imported when a verb runs, not when the command starts.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.output import (
    EPILOG,
    EXIT_API,
    EXIT_CONFLICT,
    EXIT_CONNECT,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Out,
    Usage,
    api_error,
    error,
)

if TYPE_CHECKING:
    from engram_client import EngramClient

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

# Help is plain text: typer's rich help imports markdown-it and pygments, which would make
# `engram --help` take several times longer than the command it describes.
PLAIN: dict[str, Any] = dict(rich_markup_mode=None)
GROUP: dict[str, Any] = dict(no_args_is_help=True, epilog=EPILOG, **PLAIN)  # the settings of every verb group


def make_client(url: str | None, key: str | None) -> EngramClient:
    """How every verb gets its client (tests replace it)."""
    from engram_client import EngramClient

    return EngramClient(base_url=url, api_key=key)


def run(fn: Callable[..., int | None], url: str | None, key: str | None, as_json: bool,
        args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Run the verb ``fn`` and return its exit code."""
    from engram_client import ConflictError, EngramAPIError, EngramConnectionError, JobTimeoutError, NotFoundError

    client = make_client(url, key)
    out = Out(client, as_json)
    try:
        return fn(out, *args, **kwargs) or EXIT_OK
    except Usage as exc:
        error(str(exc))
        return EXIT_USAGE
    except NotFoundError as exc:
        api_error(exc)
        return EXIT_NOT_FOUND
    except ConflictError as exc:
        api_error(exc)
        return EXIT_CONFLICT
    except EngramAPIError as exc:
        api_error(exc)
        return EXIT_API
    except EngramConnectionError as exc:
        error(f"{exc} (is the API running? set --url or ENGRAM_URL)")
        return EXIT_CONNECT
    except JobTimeoutError as exc:
        error(str(exc))
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        client.close()


def verb(target: typer.Typer, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(out, ...)`` as a command of ``target``, adding --url, --key, --json."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]  # without `out`
        extra = [inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UrlOpt),
                 inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=KeyOpt),
                 inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt)]

        @functools.wraps(fn)
        def command(*args: Any, url: str | None = None, key: str | None = None, as_json: bool = False,
                    **kwargs: Any) -> None:
            code = run(fn, url, key, as_json, args, kwargs)
            if code:
                raise typer.Exit(code)

        # typer reads the parameters from the signature: the verb's own, then the common ones.
        setattr(command, "__signature__", inspect.Signature(params + extra))  # noqa: B010
        command.__annotations__ = {p.name: p.annotation for p in params + extra}
        target.command(name or fn.__name__.rstrip("_").replace("_", "-"), epilog=EPILOG)(command)
        return fn

    return deco
