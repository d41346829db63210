"""`engram turns append|list NS SESSION`: turns from a JSON or JSONL file (or stdin), listed in seq order."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import Out, Usage, error, listing, table
from cli.verbs import GROUP, NS, SESSION, AllOpt, CursorOpt, IdemOpt, LimitOpt, verb

MAX_BATCH = 500  # turns per append request
MAX_BATCH_BYTES = 3 * 1024 * 1024  # below the API's default 4 MiB body limit

group = typer.Typer(help="Turns of a session: append from a JSON/JSONL file or stdin, list.", **GROUP)

def read_turns(source: str | None) -> list[dict[str, Any]]:
    """Turns from a file or stdin: {"turns": [...]}, a JSON list, or JSONL (one turn per line)."""
    import pydantic

    from engram_client import TurnIn

    if source is None or source == "-":
        if sys.stdin.isatty():
            typer.echo("reading turns from stdin (JSONL, Ctrl-D to end)", err=True)
        name, text = "stdin", sys.stdin.read()
    else:
        path = Path(source)
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


@verb(group, "append")
def turns_append(out: Out, ns: NS, session: SESSION,
                 file: Annotated[str | None, typer.Argument(help="JSON or JSONL file; `-` or none: stdin.",
                                                            show_default=False)] = None,
                 idempotency_key: IdemOpt = None,
                 batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Turns per request.")] = MAX_BATCH,
                 ) -> None:
    """Append turns; each request is atomic. With several batches, --idempotency-key K sends K-1, K-2, ...
    so a re-run with the same file and key resumes where it stopped."""
    from engram_client import EngramAPIError

    groups = batches(read_turns(file), batch_size)
    first, last, raw = None, None, []
    done = 0
    for i, chunk in enumerate(groups, 1):
        key = idempotency_key if not idempotency_key or len(groups) == 1 else f"{idempotency_key}-{i}"
        try:
            res = out.client.append_turns(ns, session, chunk, idempotency_key=key)
        except EngramAPIError:
            if done:
                error(f"batch {i} of {len(groups)} failed; turns seq {first}-{last} were appended before it "
                      f"(re-run with the same --idempotency-key to resume safely)")
            raise
        first = res.first_seq if first is None else first
        last, done = res.last_seq, done + len(chunk)
        raw += out.answer()["turns"]
        if len(groups) > 1 and not out.json:
            out.note(f"batch {i}/{len(groups)}: seq {res.first_seq}-{res.last_seq}")
    if out.json:
        return out.body() if len(groups) == 1 else out.dump({"first_seq": first, "last_seq": last, "turns": raw})
    out.line(f"appended {done} turn{'s' * (done != 1)} to {session}: seq {first}-{last}")


@verb(group, "list")
def turns_list(out: Out, ns: NS, session: SESSION,
               participant: Annotated[str | None, typer.Option(help="Only what this participant sees.")] = None,
               after_seq: Annotated[int | None, typer.Option(min=0, help="Only turns after this seq.")] = None,
               limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List a session's turns in seq order."""
    listing(out, out.client.list_turns, (ns, session), lambda items: table(
        out, ["seq", "speaker", "visible_to", "content"],
        [[t.seq, t.speaker, t.visible_to or "all", t.content] for t in items], "turns"),
        limit, cursor, all_, participant=participant, after_seq=after_seq)


