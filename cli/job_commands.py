"""`engram turns …`, integrate/truncate and `engram jobs …` (see cli/client_commands.py)."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import pydantic
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cli.client_commands import (
    EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, EXIT_TIMEOUT, JOB, MAX_BATCH, MAX_BATCH_BYTES, NS, SESSION, AllOpt,
    CursorOpt, IdemOpt, LimitOpt, Out, TimeoutOpt, Usage, WaitOpt, _error, _kv, _list, _table, jobs_app, turns_app,
    verb,
)
from client import EngramAPIError, Job, JobHandle, JobTimeoutError, TurnIn

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
