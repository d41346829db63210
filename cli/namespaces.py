"""`engram ns put|list|show`: namespaces, the tenants (the admin key creates them)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.output import Out, kv, listing, table
from cli.verbs import GROUP, NS, AllOpt, CursorOpt, LimitOpt, verb

group = typer.Typer(help="Namespaces: the tenants (admin key to create).", **GROUP)


def _rows(items: list[Any]) -> list[list[Any]]:
    return [[n.name, n.description, n.created_at] for n in items]


@verb(group, "put")
def ns_put(out: Out, name: Annotated[str, typer.Argument(help="Namespace name (a slug).")],
           description: Annotated[str, typer.Option(help="What it is for.")] = "") -> None:
    """Create a namespace, or replace its description (idempotent)."""
    ns = out.client.put_namespace(name, description)
    if out.json:
        return out.body()
    created = out.status() == 201
    kv(out, [("name", ns.name), ("description", ns.description), ("created_at", ns.created_at)],
       title=f"namespace {'created' if created else 'updated'}")


@verb(group, "list")
def ns_list(out: Out, limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List namespaces (all for the admin key, its own for a namespace key)."""
    listing(out, out.client.list_namespaces, (), lambda items: table(
        out, ["name", "description", "created_at"], _rows(items), "namespaces"), limit, cursor, all_)


@verb(group, "show")
def ns_show(out: Out, name: NS) -> None:
    """Show a namespace."""
    ns = out.client.get_namespace(name)
    if out.json:
        return out.body()
    table(out, ["name", "description", "created_at"], _rows([ns]))
