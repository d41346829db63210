"""`engram webhooks put|list|show|delete|deliveries NS NAME`: a namespace's webhook endpoints.

The receiver's URL is an argument of `put` (`engram webhooks put NS NAME URL --event …`): `--url`
is the API's base URL on every verb."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.output import Out, fmt, kv, listing, table
from cli.verbs import GROUP, NS, AllOpt, CursorOpt, LimitOpt, verb

if TYPE_CHECKING:
    from engram_client import Delivery, Webhook

group = typer.Typer(help="Webhook endpoints of a namespace (signed POSTs when jobs finish) and their deliveries.",
                    **GROUP)

NAME = Annotated[str, typer.Argument(help="Webhook endpoint name.", show_default=False)]
EVENTS = "job.succeeded, job.failed, job.cancelled"


def _webhook(out: Out, w: Webhook, title: str | None = None) -> None:
    kv(out, [("name", w.name), ("url", w.url), ("events", [e.value for e in w.events]),
             ("description", w.description), ("created_at", w.created_at), ("updated_at", w.updated_at)],
       title=title)


@verb(group, "put")
def webhooks_put(out: Out, ns: NS, name: NAME,
                 target: Annotated[str, typer.Argument(metavar="URL", show_default=False,
                                                       help="Where the events are POSTed (http:// or https://).")],
                 event: Annotated[list[str], typer.Option(help=f"An event to send ({EVENTS}); repeat for several.",
                                                          show_default=False)],
                 description: Annotated[str, typer.Option(help="What the endpoint is for.")] = "") -> None:
    """Register an endpoint (its signing secret is shown once), or update its URL, events and description."""
    from engram_client import WebhookCreated

    w = out.client.put_webhook(ns, name, target, event, description=description)
    if out.json:
        return out.body()
    if not isinstance(w, WebhookCreated):
        return _webhook(out, w, title="webhook updated (its secret is unchanged)")
    _webhook(out, w, title="webhook created")
    out.console.print()
    out.console.print("signing secret:", style="bold yellow")
    out.console.print(f"  {w.secret}", style="bold", markup=False, highlight=False, soft_wrap=True)
    out.err.print("Store the secret now: it is shown only once. Check each request's webhook-signature with it "
                  "(engram_client.verify).", style="yellow")


@verb(group, "list")
def webhooks_list(out: Out, ns: NS, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a namespace's webhook endpoints (never their secrets)."""
    listing(out, out.client.list_webhooks, (ns,), lambda items: table(
        out, ["name", "url", "events", "description"],
        [[w.name, w.url, [e.value for e in w.events], w.description] for w in items], "webhooks"),
        limit, cursor, all_)


# show and delete as short as jobs.py's verbs, and alike: each verb its own typer command, its docstring its help.
@verb(group, "show")
def webhooks_show(out: Out, ns: NS, name: NAME) -> None:
    """Show a webhook endpoint (without its secret)."""
    w = out.client.get_webhook(ns, name)
    if out.json:
        return out.body()
    _webhook(out, w)


@verb(group, "delete")
def webhooks_delete(out: Out, ns: NS, name: NAME) -> None:
    """Delete a webhook endpoint; its deliveries not yet sent are dropped."""
    out.client.delete_webhook(ns, name)
    if not out.json:
        out.line(f"webhook {name} deleted")


def _outcome(d: Delivery) -> str | None:
    """How the last try went, and when the next one is due."""
    said = []
    if d.attempts:
        last = d.attempts[-1]
        said.append(last.error or f"answered {last.status_code}")
    if d.next_attempt_at is not None:
        said.append(f"next try {fmt(d.next_attempt_at)}")
    return "; ".join(said) or None


@verb(group, "deliveries")
def webhooks_deliveries(out: Out, ns: NS, name: NAME, limit: LimitOpt = None, cursor: CursorOpt = None,
                        all_: AllOpt = False) -> None:
    """List an endpoint's deliveries, newest first: status, tries, how the last went, when the next is due."""
    listing(out, out.client.list_deliveries, (ns, name), lambda items: table(
        out, ["id", "event", "job", "status", "tries", "last try, next try"],
        [[d.id, d.event.value, d.job_id, d.status.value, len(d.attempts), _outcome(d)] for d in items],
        f"deliveries of {name} (newest first)"), limit, cursor, all_)
