"""`engram keys create|list|delete NS`: namespace keys (admin only)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import Out, kv, listing, table
from cli.verbs import GROUP, NS, AllOpt, CursorOpt, LimitOpt, verb

group = typer.Typer(help="Namespace keys (admin only): create, list, revoke.", **GROUP)


@verb(group, "create")
def keys_create(out: Out, ns: NS, description: Annotated[str, typer.Option(help="What the key is for.")] = "") -> None:
    """Issue a namespace key. Its secret is shown once."""
    key = out.client.create_key(ns, description)
    if out.json:
        return out.body()
    kv(out, [("id", key.id), ("description", key.description), ("created_at", key.created_at),
             ("secret", key.secret)], title="key created")
    out.err.print("Store the secret now: it is shown only once.", style="yellow")


@verb(group, "list")
def keys_list(out: Out, ns: NS, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a namespace's keys (never their secrets)."""
    listing(out, out.client.list_keys, (ns,), lambda items: table(
        out, ["id", "description", "created_at"], [[k.id, k.description, k.created_at] for k in items], "keys"),
        limit, cursor, all_)


@verb(group, "delete")
def keys_delete(out: Out, ns: NS, key_id: Annotated[str, typer.Argument(help="Key id (key_…).")]) -> None:
    """Revoke a key at once."""
    out.client.delete_key(ns, key_id)
    if not out.json:
        out.line(f"key {key_id} revoked")
