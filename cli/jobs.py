"""`engram integrate|truncate NS SESSION` (the long operations) and `engram jobs list|show|watch|cancel`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.output import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, EXIT_TIMEOUT, Out, error, kv, listing, table
from cli.verbs import GROUP, JOB, NS, PLAIN, SESSION, AllOpt, CursorOpt, IdemOpt, LimitOpt, TimeoutOpt, WaitOpt, verb

if TYPE_CHECKING:
    from engram_client import Job, JobHandle

group = typer.Typer(help="Jobs of integrate/truncate: list, show, watch, cancel.", **GROUP)
top = typer.Typer(**PLAIN)  # verbs at the top level of `engram`


def _job(out: Out, job: Job, title: str | None = None) -> None:
    detail = (job.error or {}).get("detail") if job.error else None
    kv(out, [("id", job.id), ("kind", job.kind), ("status", job.status), ("session", job.session),
             ("progress", f"{job.progress.completed}/{job.progress.total}"), ("attempts", job.attempts),
             ("cancel_requested", job.cancel_requested), ("created_at", job.created_at),
             ("started_at", job.started_at), ("finished_at", job.finished_at), ("error", detail)], title=title)
    _result(out, job)


def _result(out: Out, job: Job) -> None:
    result = job.result or {}
    if job.kind == "integrate" and "participants" in result:
        table(out, ["participant", "turns_integrated", "insights_created", "memories_created", "watermark"],
              [[p.get("name"), p.get("turns_integrated"), p.get("insights_created"), p.get("memories_created"),
                p.get("watermark")] for p in result["participants"]], "participants integrated")
    elif result:
        kv(out, sorted(result.items()), title="result")


def _finished(job: Job) -> int:
    if job.status == "succeeded":
        return EXIT_OK
    detail = (job.error or {}).get("detail") or "no detail"
    error(f"job {job.id} was cancelled" if job.status == "cancelled" else f"job {job.id} failed: {detail}")
    return EXIT_JOB_FAILED


def _follow(out: Out, handle: JobHandle, timeout: float | None) -> int:
    """Wait for the job (a progress bar for people), print it, and exit 0, 1 (failed/cancelled) or 7."""
    from engram_client import JobTimeoutError

    try:
        if out.json:
            job = handle.wait(timeout=timeout)
        else:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

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
        error(f"{exc}; it goes on: `engram jobs watch {handle.namespace} {handle.id}`")
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        error(f"interrupted; job {handle.id} goes on: `engram jobs watch {handle.namespace} {handle.id}`")
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


@verb(top, "integrate")
def integrate(out: Out, ns: NS, session: SESSION, wait: WaitOpt = False, timeout: TimeoutOpt = None,
              idempotency_key: IdemOpt = None) -> int:
    """Integrate the session's new turns into its participants' insights and memories."""
    return _start(out, ns, session, "integrate", wait, timeout, idempotency_key)


@verb(top, "truncate")
def truncate(out: Out, ns: NS, session: SESSION, wait: WaitOpt = False, timeout: TimeoutOpt = None,
             idempotency_key: IdemOpt = None) -> int:
    """Reset a session: turns, data and insights go; participants and memories stay."""
    return _start(out, ns, session, "truncate", wait, timeout, idempotency_key)


@verb(group, "list")
def jobs_list(out: Out, ns: NS, session: Annotated[str | None, typer.Option(help="Only this session's jobs.")] = None,
              kind: Annotated[str | None, typer.Option(help="integrate or truncate.")] = None,
              status: Annotated[str | None, typer.Option(
                  help="queued, running, succeeded, failed or cancelled.")] = None,
              limit: LimitOpt = None, cursor: CursorOpt = None, all_: AllOpt = False) -> None:
    """List jobs, newest first."""
    listing(out, out.client.list_jobs, (ns,), lambda items: table(
        out, ["id", "kind", "status", "progress", "session"],
        [[j.id, j.kind, j.status, f"{j.progress.completed}/{j.progress.total}", j.session] for j in items],
        "jobs (newest first)"), limit, cursor, all_, session=session, kind=kind, status=status)


@verb(group, "show")
def jobs_show(out: Out, ns: NS, job: JOB) -> None:
    """Show a job and its result."""
    j = out.client.get_job(ns, job)
    if out.json:
        return out.body()
    _job(out, j)


@verb(group, "watch")
def jobs_watch(out: Out, ns: NS, job: JOB, timeout: TimeoutOpt = None) -> int:
    """Follow a job with a progress bar until it finishes (exit 1 if it failed or was cancelled)."""
    return _follow(out, out.client.job(ns, job), timeout)


@verb(group, "cancel")
def jobs_cancel(out: Out, ns: NS, job: JOB) -> None:
    """Cancel a job: a queued one at once, a running one at its next safe point."""
    j = out.client.cancel_job(ns, job)
    if out.json:
        return out.body()
    _job(out, j, title="job cancelled" if j.status == "cancelled"
         else "cancel requested: it stops at its next safe point")
