"""`python -m bench` (`make bench`): start the real system, measure it against references, report.

    python -m bench                  full run (about 3 minutes on 2 cores)
    python -m bench --quick          smaller counts, for smoke checks (about 1 minute)
    python -m bench --only submit,e2e
    python -m bench --profile        also py-spy the api and worker w1 during the submit, e2e,
                                     ingest and throughput phases; profiles, results and report
                                     go to bench/profiles/ (the profiler costs CPU, so these
                                     figures are not the reference ones); read them with
                                     `python -m bench.profile_summary bench/profiles/*.txt`

Writes bench/results.json, bench/report.md and bench/integration_vs_turns.png.
See BENCHMARKS.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.phases import FULL, PHASES, QUICK, Ctx, Figure, Profiler

BENCH = Path(__file__).resolve().parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller counts (smoke check)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the api and worker w1 during submit, e2e, ingest and throughput")
    p.add_argument("--profile-mode", choices=("gil", "wall"), default="gil",
                   help="gil: only threads holding the GIL (CPU spent in Python); wall: every non-idle thread")
    p.add_argument("--only", default="", help=f"comma-separated phases among {','.join(PHASES)}")
    p.add_argument("--memory-jobs", type=int, default=None, help="jobs of the memory phase (default 5000, quick 300)")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="first wait up to SECONDS for the machine's CPU load to drop below 25%% of one core")
    p.add_argument("--out", type=Path, default=None, help="output folder (default bench/, or bench/profiles with --profile)")
    return p.parse_args(argv)


async def run_phases(ctx: Ctx, names: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    await ctx.api.namespace(ctx.ns)
    for name in names:
        print(f"\n[{name}]", flush=True)
        t0 = time.perf_counter()
        figures += await PHASES[name](ctx)
        ctx.procs.check_alive()
        print(f"  ({time.perf_counter() - t0:.0f}s)", flush=True)
    ctx.api.client.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from dataclasses import replace

    from bench import report
    from bench.system import Processes, Services

    cfg = QUICK if args.quick else FULL
    if args.memory_jobs is not None:
        cfg = replace(cfg, memory_jobs=args.memory_jobs)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(PHASES)
    unknown = set(names) - set(PHASES)
    if unknown:
        print(f"unknown phases: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    out = args.out or (BENCH / "profiles" if args.profile else BENCH)
    out.mkdir(parents=True, exist_ok=True)

    import psutil

    background = round(psutil.cpu_percent(interval=2.0) * (os.cpu_count() or 1), 1)
    deadline = time.monotonic() + args.wait_quiet
    while background > 25 and time.monotonic() < deadline:
        print(f"  waiting for a quieter machine (CPU load {background:.0f}% of one core) …", flush=True)
        time.sleep(5)
        background = round(psutil.cpu_percent(interval=2.0) * (os.cpu_count() or 1), 1)
    print(f"engram bench ({cfg.name}): background CPU load before starting: {background:.0f}% of one core", flush=True)
    if background > 25:
        print("  warning: the machine is busy with other work; figures will be noisy (see 'other processes' in "
              "each phase's CPU breakdown)", flush=True)
    started = time.perf_counter()
    services = Services()
    procs = None
    ctx = None
    figures: list[Figure] = []
    failed = False
    try:
        print("  starting PostgreSQL and Redis …", flush=True)
        services.start()
        # The bench process itself talks to the same services (raw Celery reference, SQL).
        os.environ["ENGRAM_DATABASE_URL"] = services.database_url
        os.environ["ENGRAM_REDIS_URL"] = services.redis_url
        services.migrate()
        procs = Processes(services, BENCH / "logs")
        print(f"  postgres: {services.kind['postgres']}; redis: {services.kind['redis']}\n"
              "  starting api, 2 workers, scheduler, hello-world server, tutorial-shape peer, 2 raw Celery workers …",
              flush=True)
        procs.start("api", "w1", "w2", "scheduler", "hello", "tutorial", "r1", "r2")
        procs.wait_ready()
        print(f"  ready after {time.perf_counter() - started:.0f}s (logs in {procs.log_dir})", flush=True)
        ctx = Ctx(cfg, procs, services, Profiler(out if args.profile else None, args.profile_mode))
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            figures = runner.run(run_phases(ctx, names))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        failed = True
    except Exception:  # noqa: BLE001 - report, clean up, exit non-zero
        traceback.print_exc()
        if procs is not None:
            print("\n".join(procs.tail(n, 8) for n in procs.procs), file=sys.stderr)
        failed = True
    finally:
        pg_version = ""
        try:
            if ctx is not None:
                pg_version = str(ctx.sql("SHOW server_version")[0][0])
                ctx.db.close()
        except Exception as exc:  # noqa: BLE001 - the report only loses the version
            print(f"warning: could not read PostgreSQL's version: {exc}", file=sys.stderr)
        if procs is not None:
            print("stopping processes …", flush=True)
            procs.stop_all()
        services.stop()
    if failed:
        return 1

    duration = time.perf_counter() - started
    run = {
        "mode": cfg.name + (" (profiled)" if args.profile else ""),
        "phases": names,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": round(duration, 1),
        "machine": report.machine(),
        "background_cpu_pct_of_core_at_start": background,
        "services": {"postgres": services.kind["postgres"], "postgres_version": pg_version, "redis": services.kind["redis"]},
        "config": {k: v for k, v in vars(cfg).items()},
    }
    print("\n" + report.table(figures))
    report.write_json(out / "results.json", run, figures)
    plot_name = "integration_vs_turns.png"
    has_plot = report.plot(out / plot_name, figures)
    (out / "report.md").write_text(report.markdown(run, figures, plot_name if has_plot else None))
    fails = [f.key for f in figures if f.passed is False]
    print(f"\n{len(figures)} figures, {len(fails)} target(s) failed{': ' + ', '.join(fails) if fails else ''}. "
          f"Wrote {out / 'results.json'}, {out / 'report.md'}" + (f", {out / plot_name}" if has_plot else
                                                                  " (no plot: needs the scaling phase and matplotlib)")
          + f". Took {duration:.0f}s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
