"""The `engram` command: run the processes of the system (cli/server.py) and talk to a running API
(one module per group of client verbs: namespaces, keys, agents, sessions, turns, jobs, webhooks).

    engram dev | migrate | api | worker | scheduler | flower
    engram ns put|list|show            engram keys create|list|delete NS
    engram agents put|list|show|delete|memories NS AGENT
    engram sessions create|list|show|update|delete|undelete NS NAME
    engram bind|unbind NS SESSION AGENT engram participants NS SESSION
    engram insights NS SESSION AGENT    engram turns append|list NS SESSION
    engram integrate|truncate NS SESSION --wait
    engram jobs list|show|watch|cancel NS JOB
    engram webhooks put NS NAME URL --event E [--event E]   engram webhooks list|show|delete|deliveries NS NAME
    engram recall NS AGENT QUERY        engram context NS SESSION AGENT [--query]
    engram forget NS AGENT MEMORY_ID    engram redact NS SESSION SEQ

Every client verb takes --url (env ENGRAM_URL, default http://127.0.0.1:8000), --key (env
ENGRAM_API_KEY, else ENGRAM_ADMIN_KEY) and --json (print the API's JSON body as is, for scripts;
human output is rich tables; deletes print nothing with --json, the API answers 204). Errors go to
stderr as `error: <detail>`. Lists show one page (--limit, --cursor) or everything (--all).

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

from __future__ import annotations

import sys
from typing import Any

import typer

from cli import agents, jobs, keys, memories, namespaces, server, sessions, turns, webhooks
from cli.server import run_migrations
from cli.verbs import PLAIN

__all__ = ["app", "main", "run_migrations"]

app = typer.Typer(help="Engram: working memory for AI agents.", no_args_is_help=True, add_completion=False, **PLAIN)
app.add_typer(server.app)
for _group, _name in ((namespaces.group, "ns"), (keys.group, "keys"), (agents.group, "agents"),
                      (sessions.group, "sessions"), (turns.group, "turns"), (jobs.group, "jobs"),
                      (webhooks.group, "webhooks")):
    app.add_typer(_group, name=_name)
app.add_typer(jobs.top)
app.add_typer(sessions.top)
app.add_typer(memories.top)


# Optional parts of the HTTP stack that no verb uses: httpx's own command line (click and rich)
# and httpcore's trio support (trio is there only when a test tool brought it). Importing them
# would make every client verb start several times slower; marked absent, httpx and httpcore
# skip them, as they do when those packages are not installed.
_UNUSED = ("httpx._main", "trio")


def main() -> None:
    """The `engram` command (a console script, and `python -m cli`)."""
    modules: dict[str, Any] = sys.modules  # None in sys.modules makes `import name` fail at once
    for name in _UNUSED:
        modules.setdefault(name, None)
    app()


if __name__ == "__main__":
    main()
