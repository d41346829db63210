"""The six measurements. Each returns figures: value, reference, ratio, target, pass/fail."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.loadgen import Client, run_load
from bench.system import Processes, libpq
from bench.workload import Api, Text, append_all, limited

CONCURRENCY = 32


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    name: str
    hello_warmup: int
    hello_per_round: int
    submit_warmup: int
    submit_per_round: int
    rounds: int
    e2e_warmup: int
    e2e_jobs: int
    ingest_warmup: int
    ingest_batches: int
    history_turns: int
    sweep: tuple[int, ...]
    sweep_reps: int
    headline_turns: int
    headline_reps: int
    tp_sessions: int
    tp_rounds: int
    memory_jobs: int


FULL = Config(name="full", hello_warmup=2000, hello_per_round=6000, submit_warmup=200, submit_per_round=600, rounds=3,
              e2e_warmup=20, e2e_jobs=200, ingest_warmup=2, ingest_batches=20, history_turns=100_000,
              sweep=(100, 500, 1000, 2000), sweep_reps=3, headline_turns=1000, headline_reps=7,
              tp_sessions=300, tp_rounds=3, memory_jobs=5000)
QUICK = Config(name="quick", hello_warmup=500, hello_per_round=2000, submit_warmup=64, submit_per_round=200, rounds=2,
               e2e_warmup=5, e2e_jobs=40, ingest_warmup=1, ingest_batches=5, history_turns=10_000,
               sweep=(100, 1000), sweep_reps=1, headline_turns=1000, headline_reps=3,
               tp_sessions=100, tp_rounds=1, memory_jobs=300)


# --- figures ---------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    title: str
    value: float
    unit: str
    reference: float | None = None
    reference_label: str = ""
    ratio: float | None = None
    target: str = ""  # e.g. "ratio >= 0.20"; empty: information only
    passed: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # one line for the Markdown report

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation (p in 0..100)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(x: float) -> float:
    return round(x * 1000, 2)


# --- context ---------------------------------------------------------------------------------


class Profiler:
    """py-spy record on chosen processes while a phase runs (--profile)."""

    def __init__(self, out_dir: Path | None, mode: str = "gil") -> None:
        self.out_dir = out_dir
        self.mode = mode  # "gil": samples of threads holding the GIL (CPU in Python); "wall": all threads
        self._running: list[tuple[Any, Path]] = []

    def start(self, phase: str, targets: dict[str, int]) -> None:
        if self.out_dir is None:
            return
        import shutil
        import subprocess
        import sys

        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for label, pid in targets.items():
            out = self.out_dir / f"{phase}-{label}-{self.mode}.txt"
            cmd = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--output", str(out),
                   "--subprocesses", "--nonblocking", "--threads"] + (["--gil"] if self.mode == "gil" else [])
            err = open(self.out_dir / f"{phase}-{label}-{self.mode}.err", "wb")  # noqa: SIM115 - kept for py-spy
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            self._running.append((proc, out))
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        import signal

        for proc, _ in self._running:
            proc.send_signal(signal.SIGINT)
        for proc, out in self._running:
            try:
                proc.wait(30)
            except Exception:  # noqa: BLE001
                proc.kill()
        self._running.clear()


class CpuMeter:
    """CPU seconds used by each part of the system between two snapshots, as % of one core."""

    def __init__(self, procs: Processes, services: Any) -> None:
        self.procs = procs
        self.services = services

    def _members(self) -> dict[str, list[Any]]:
        import psutil

        kids: dict[int, list[Any]] = {}
        for p in psutil.process_iter(["ppid"]):  # one pass over /proc instead of one per tree
            kids.setdefault(p.info["ppid"], []).append(p)

        def tree(*names: str) -> list[Any]:
            out: list[Any] = []
            for n in names:
                if n not in self.procs.procs:
                    continue
                try:
                    todo = [psutil.Process(self.procs.pid(n))]
                except psutil.NoSuchProcess:
                    continue
                while todo:
                    p = todo.pop()
                    out.append(p)
                    todo += kids.get(p.pid, [])
            return out

        groups = {"api": tree("api"), "workers": tree("w1", "w2"), "scheduler": tree("scheduler"),
                  "hello": tree("hello"), "raw workers": tree("r1", "r2"), "bench client": [psutil.Process()]}
        groups.update(self.services.service_processes())
        return groups

    def snapshot(self) -> tuple[float, dict[int, float], dict[str, list[int]], float]:
        import psutil

        members = self._members()
        times: dict[int, float] = {}
        for ps in members.values():
            for p in ps:
                try:
                    t = p.cpu_times()
                    times[p.pid] = t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        ct = psutil.cpu_times()
        # guest time is already inside user time on Linux; steal is time the hypervisor gave elsewhere
        busy = sum(getattr(ct, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
        return time.perf_counter(), times, {g: [p.pid for p in ps] for g, ps in members.items()}, (busy, getattr(ct, "steal", 0.0))

    def seconds(self, a, b) -> dict[str, float]:  # type: ignore[no-untyped-def]
        """CPU seconds per part between two snapshots."""
        return {g: sum(b[1].get(pid, 0.0) - a[1].get(pid, 0.0) for pid in pids) for g, pids in b[2].items()}

    def delta(self, a, b) -> dict[str, float]:  # type: ignore[no-untyped-def]
        wall = b[0] - a[0]
        out: dict[str, float] = {}
        for g, pids in b[2].items():
            used = sum(b[1].get(pid, 0.0) - a[1].get(pid, 0.0) for pid in pids)
            out[g] = round(100 * used / wall, 1)
        machine = 100 * (b[3][0] - a[3][0]) / wall
        out["other processes (not the bench's)"] = round(max(0.0, machine - sum(out.values())), 1)
        out["machine (all cores)"] = round(machine, 1)
        out["steal (hypervisor)"] = round(100 * (b[3][1] - a[3][1]) / wall, 1)
        return out


class Ctx:
    def __init__(self, cfg: Config, procs: Processes, services: Any, profiler: Profiler) -> None:
        self.cfg = cfg
        self.procs = procs
        self.api = Api(procs.api_port, procs.admin_key)
        self.text = Text()
        self.ns = "bench"
        self.dsn = libpq(services.database_url)
        self.db = psycopg.connect(self.dsn, autocommit=True)
        self.profiler = profiler
        self.cpu = CpuMeter(procs, services)

    def sql(self, query: str, params: Any = None) -> list[tuple]:
        cur = self.db.execute(query, params)
        return cur.fetchall() if cur.description is not None else []

    def cpu_since(self, snap) -> dict[str, float]:  # type: ignore[no-untyped-def]
        """CPU per part since ``snap`` (% of one core), parts under 1% left out."""
        return {g: v for g, v in self.cpu.delta(snap, self.cpu.snapshot()).items() if v >= 1}

    def pg_sessions(self) -> int:
        """Connections PostgreSQL has accepted so far into this database (pg_stat_database.sessions)."""
        try:
            return int(self.sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")[0][0])
        except Exception:  # noqa: BLE001 - PostgreSQL < 14
            return -1

    def say(self, msg: str) -> None:
        print(f"  {msg}", flush=True)

    async def drain(self, timeout: float = 300) -> None:
        """Wait until no job is queued or running (workers idle)."""
        deadline = time.monotonic() + timeout
        while self.sql("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]:
            self.procs.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs still open after {timeout:.0f}s")
            await asyncio.sleep(0.05)

    def worker_targets(self) -> dict[str, int]:
        return {"api": self.procs.pid("api"), "w1": self.procs.pid("w1")}


# --- 1. submit ---------------------------------------------------------------------------------


async def submit(ctx: Ctx) -> list[Figure]:
    cfg, api, ns = ctx.cfg, ctx.api, ctx.ns
    hello = Client("127.0.0.1", ctx.procs.hello_port)
    n = cfg.submit_warmup + cfg.rounds * cfg.submit_per_round
    creates = [api.client.build("POST", f"/v1/namespaces/{ns}/sessions", {"name": f"sub-{i}"}) for i in range(n)]
    res = await run_load(api.client, creates, CONCURRENCY)
    if res.statuses != {201: n}:
        raise RuntimeError(f"creating the submit sessions: {res.statuses}")
    ctx.say(f"{n} sessions created in {res.elapsed:.1f}s ({res.rate:.0f}/s)")

    def integrates(start: int, k: int) -> list[bytes]:
        return [api.client.build("POST", f"/v1/namespaces/{ns}/sessions/sub-{i}/integrate") for i in range(start, start + k)]

    hello_raw, hello_sync_raw = hello.build("POST", "/hello"), hello.build("POST", "/hello-sync")

    async def measure(client: Client, reqs: list[bytes], check: int, cpu: dict[str, list[float]]):  # type: ignore[no-untyped-def]
        c0 = ctx.cpu.snapshot()
        res = await run_load(client, reqs, CONCURRENCY)
        for g, v in ctx.cpu.delta(c0, ctx.cpu.snapshot()).items():
            cpu.setdefault(g, []).append(v)
        if res.statuses != {check: len(reqs)}:
            raise RuntimeError(f"unexpected statuses {res.statuses}")
        return res

    # Warm-up of both servers, then rounds that alternate: hello, hello through the thread pool,
    # Engram (then wait for the workers to drain the jobs), so that a slower moment of a shared
    # machine hits the figure and its reference alike.
    await run_load(hello, [hello_raw] * cfg.hello_warmup, CONCURRENCY)
    await run_load(hello, [hello_sync_raw] * cfg.hello_warmup, CONCURRENCY)
    await run_load(api.client, integrates(0, cfg.submit_warmup), CONCURRENCY)
    await ctx.drain()
    h_rates, h_lats, hs_rates, hs_lats, e_rates, e_lats = [], [], [], [], [], []
    hello_cpu: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    pg_conns: list[float] = []
    ctx.profiler.start("submit", ctx.worker_targets())
    try:
        for r in range(cfg.rounds):
            res = await measure(hello, [hello_raw] * cfg.hello_per_round, 200, hello_cpu)
            h_rates.append(res.rate)
            h_lats += res.latencies
            res = await run_load(hello, [hello_sync_raw] * cfg.hello_per_round, CONCURRENCY)
            hs_rates.append(res.rate)
            hs_lats += res.latencies
            pg0 = ctx.pg_sessions()
            res = await measure(api.client, integrates(cfg.submit_warmup + r * cfg.submit_per_round, cfg.submit_per_round),
                                202, cpu)
            e_rates.append(res.rate)
            e_lats += res.latencies
            await ctx.drain()
            await asyncio.sleep(1.1)  # PostgreSQL backends flush their statistics at most once a second
            pg_conns.append((ctx.pg_sessions() - pg0) / cfg.submit_per_round)
    finally:
        ctx.profiler.stop()
    ctx.say(f"hello: {statistics.median(h_rates):.0f} req/s (sync endpoint {statistics.median(hs_rates):.0f} req/s)")
    rate, ref = statistics.median(e_rates), statistics.median(h_rates)
    ratio = statistics.median(e / h for e, h in zip(e_rates, h_rates))  # each round against its own reference
    ctx.say(f"integrate accepted: {rate:.0f} req/s")
    details = {
        "concurrency": CONCURRENCY, "rounds": cfg.rounds, "requests_per_round": cfg.submit_per_round,
        "rates": [round(x, 1) for x in e_rates], "p50_ms": ms(pct(e_lats, 50)), "p99_ms": ms(pct(e_lats, 99)),
        "hello_rates": [round(x, 1) for x in h_rates], "hello_p50_ms": ms(pct(h_lats, 50)), "hello_p99_ms": ms(pct(h_lats, 99)),
        "hello_sync_rate": round(statistics.median(hs_rates), 1), "hello_sync_p50_ms": ms(pct(hs_lats, 50)),
        "hello_sync_p99_ms": ms(pct(hs_lats, 99)),
        "round_ratios": [round(e / h, 4) for e, h in zip(e_rates, h_rates)],
        "pg_connections_opened_per_request": round(statistics.median(pg_conns), 3),
        "cpu_pct_of_core": {g: round(statistics.median(v), 1) for g, v in cpu.items() if statistics.median(v) >= 1},
        "hello_cpu_pct_of_core": {g: round(statistics.median(v), 1) for g, v in hello_cpu.items()
                                  if statistics.median(v) >= 1},
    }
    ctx.say(f"CPU during integrate rounds (% of one core): {details['cpu_pct_of_core']}")
    ctx.say(f"CPU during hello rounds: {details['hello_cpu_pct_of_core']}")
    note = (f"p50/p99 {ms(pct(e_lats, 50)):.0f}/{ms(pct(e_lats, 99)):.0f} ms (hello {ms(pct(h_lats, 50)):.1f}/"
            f"{ms(pct(h_lats, 99)):.1f} ms); hello through the thread pool (sync endpoint) "
            f"{statistics.median(hs_rates):,.0f} req/s; PostgreSQL connections opened per request "
            f"{details['pg_connections_opened_per_request']:.2f}")
    return [
        Figure("submit_rate", "submit: POST …/integrate accepted/s at 32 clients", round(rate, 1), "req/s",
               round(ref, 1), "hello-world POST, same uvicorn set-up", round(ratio, 3), "ratio >= 0.20",
               ratio >= 0.20, details, note),
        Figure("submit_p50", "submit latency p50", ms(pct(e_lats, 50)), "ms", ms(pct(h_lats, 50)), "hello-world p50",
               round(pct(e_lats, 50) / pct(h_lats, 50), 1), details={}),
        Figure("submit_p99", "submit latency p99", ms(pct(e_lats, 99)), "ms", ms(pct(h_lats, 99)), "hello-world p99",
               round(pct(e_lats, 99) / pct(h_lats, 99), 1), details={}),
    ]


# --- 2. end-to-end latency ----------------------------------------------------------------------


async def e2e(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    total = cfg.e2e_warmup + cfg.e2e_jobs

    async def setup(i: int) -> None:
        a, b = f"e{i}-a", f"e{i}-b"
        await api.agent(ns, a)
        await api.agent(ns, b)
        await api.session(ns, f"e2e-{i}", [a, b])
        await api.append(ns, f"e2e-{i}", text.turns([a, b], 20))

    t0 = time.perf_counter()
    await limited([setup(i) for i in range(total)], CONCURRENCY)
    ctx.say(f"{total} sessions (2 participants, 20 turns) prepared in {time.perf_counter() - t0:.1f}s")
    await ctx.drain()

    from bench import raw_celery

    rds = raw_celery._client()
    key = f"bench:e2e:{secrets.token_hex(4)}"

    def raw_round_trip(i: int) -> float:
        t0 = time.perf_counter()
        raw_celery.send(key, str(i))
        if rds.blpop([key], timeout=30) is None:
            raise RuntimeError("raw Celery no-op did not complete in 30 s")
        return time.perf_counter() - t0

    # Each Engram job is followed by one raw Celery round trip: the two see the same machine.
    lat, queue_wait, run, post, raw = [], [], [], [], []
    ctx.profiler.start("e2e", ctx.worker_targets())
    c0 = ctx.cpu.snapshot()
    try:
        for i in range(total):
            t0 = time.perf_counter()
            job = await api.integrate(ns, f"e2e-{i}")
            t1 = time.perf_counter()
            job = await api.wait(ns, job["id"])
            t2 = time.perf_counter()
            await asyncio.sleep(0.01)  # let the worker finish its bookkeeping (ack, events)
            if job["status"] != "succeeded":
                raise RuntimeError(f"e2e job failed: {job}")
            r = raw_round_trip(i)
            if i >= cfg.e2e_warmup:
                lat.append(t2 - t0)
                post.append(t1 - t0)
                queue_wait.append(_secs(job["started_at"]) - _secs(job["created_at"]))
                run.append(_secs(job["finished_at"]) - _secs(job["started_at"]))
                raw.append(r)
    finally:
        ctx.profiler.stop()
    cpu_s = ctx.cpu.seconds(c0, ctx.cpu.snapshot())  # the raw round trips use none of api, workers, postgres
    e2e_cpu = ctx.cpu_since(c0)

    # The same sessions again: nothing new to integrate, so no integrator call: what is left is
    # the job machinery (API, broker, claim, transactions, notify, long-poll).
    empty = []
    for i in range(total):
        t, job = await api.integrate_and_wait(ns, f"e2e-{i}")
        if i >= cfg.e2e_warmup:
            empty.append(t)

    p50, ref = pct(lat, 50), pct(raw, 50)
    ctx.say(f"integrate e2e p50 {ms(p50)} ms p99 {ms(pct(lat, 99))} ms; nothing new p50 {ms(pct(empty, 50))} ms; "
            f"raw Celery p50 {ms(ref)} ms")
    ratio = p50 / ref
    details = {
        "jobs": cfg.e2e_jobs, "session": "2 participants, 20 turns", "sequential": True,
        "p50_ms": ms(p50), "p90_ms": ms(pct(lat, 90)), "p99_ms": ms(pct(lat, 99)), "max_ms": ms(max(lat)),
        "post_p50_ms": ms(pct(post, 50)), "queue_wait_p50_ms": ms(pct(queue_wait, 50)),
        "run_p50_ms": ms(pct(run, 50)),
        "note": "queue_wait = job created_at → started_at (API commit, send, worker claim); run = started_at → finished_at",
        "raw_p50_ms": ms(ref), "raw_p99_ms": ms(pct(raw, 99)), "cpu_pct_of_core": e2e_cpu,
        "nothing_new_p50_ms": ms(pct(empty, 50)), "nothing_new_p99_ms": ms(pct(empty, 99)),
        "cpu_ms_per_job": {k: round(cpu_s[k] * 1000 / total, 1) for k in ("workers", "api", "postgres")},
    }
    note = (f"POST {ms(pct(post, 50)):.1f} ms, created→started {ms(pct(queue_wait, 50)):.1f} ms, started→finished "
            f"{ms(pct(run, 50)):.1f} ms (p50s); CPU per job: workers {details['cpu_ms_per_job']['workers']:.0f} ms, "
            f"api {details['cpu_ms_per_job']['api']:.0f} ms; {cfg.e2e_jobs} sequential jobs")
    return [
        Figure("e2e_p50", "end-to-end integrate (2×20 turns) p50, POST → finished via ?wait", ms(p50), "ms", ms(ref),
               "raw Celery no-op round trip p50, same broker", round(ratio, 2), "ratio <= 5", ratio <= 5, details, note),
        Figure("e2e_p99", "end-to-end integrate p99", ms(pct(lat, 99)), "ms", ms(pct(raw, 99)),
               "raw Celery no-op round trip p99", round(pct(lat, 99) / pct(raw, 99), 2)),
        Figure("e2e_machinery_p50", "end-to-end integrate with nothing new (job machinery only) p50",
               ms(pct(empty, 50)), "ms", ms(ref), "raw Celery no-op round trip p50", round(pct(empty, 50) / ref, 2)),
    ]


def _secs(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


# --- 3. ingestion --------------------------------------------------------------------------------


async def ingest(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    size = 500
    await api.agent(ns, "ing-a")
    await api.agent(ns, "ing-b")
    await api.session(ns, "ingest", ["ing-a", "ing-b"])
    batches = [text.turns(["ing-a", "ing-b"], size) for _ in range(cfg.ingest_warmup + cfg.ingest_batches)]
    path = f"/v1/namespaces/{ns}/sessions/ingest/turns"
    raws = [api.client.build("POST", path, {"turns": b}) for b in batches]

    cols = "session_id, seq, speaker, content, visible_to, metadata"
    ctx.sql("DROP TABLE IF EXISTS bench_turns")
    ctx.sql("CREATE TABLE bench_turns (LIKE turns INCLUDING ALL)")  # LIKE copies no foreign key

    def rows(sid: int, b: int) -> list[tuple]:
        return [(sid, b * size + j + 1, t["speaker"], t["content"], None, Jsonb({})) for j, t in enumerate(batches[b])]

    insert_sql = f"INSERT INTO bench_turns ({cols}) VALUES " + ",".join(["(%s, %s, %s, %s, %s, %s)"] * size)
    api_times, insert_times, copy_times = [], [], []
    ctx.profiler.start("ingest", {"api": ctx.procs.pid("api")})
    try:
        with psycopg.connect(ctx.dsn) as conn:
            # Interleaved, batch by batch: API append, the same rows by INSERT, then by COPY.
            for b, raw in enumerate(raws):
                t0 = time.perf_counter()
                resp = await api.client.send(raw)
                elapsed = time.perf_counter() - t0
                if resp.status != 201:
                    raise RuntimeError(f"append -> {resp.status}: {resp.body[:300]!r}")
                params = [v for row in rows(1, b) for v in row]
                t0 = time.perf_counter()
                conn.execute(insert_sql, params)
                conn.commit()
                t_insert = time.perf_counter() - t0
                data = rows(2, b)
                t0 = time.perf_counter()
                with conn.cursor() as cur, cur.copy(f"COPY bench_turns ({cols}) FROM STDIN") as cp:
                    for row in data:
                        cp.write_row(row)
                conn.commit()
                t_copy = time.perf_counter() - t0
                if b >= cfg.ingest_warmup:
                    api_times.append(elapsed)
                    insert_times.append(t_insert)
                    copy_times.append(t_copy)
    finally:
        ctx.profiler.stop()
    ctx.sql("DROP TABLE bench_turns")

    api_rate = size / statistics.median(api_times)
    ins_rate = size / statistics.median(insert_times)
    copy_rate = size / statistics.median(copy_times)
    ctx.say(f"append {api_rate:.0f} turns/s; raw INSERT {ins_rate:.0f}/s; COPY {copy_rate:.0f}/s")
    details = {"batch": size, "batches": cfg.ingest_batches, "session": "2 participants, turns visible to all",
               "api_batch_p50_ms": ms(statistics.median(api_times)), "api_batch_max_ms": ms(max(api_times)),
               "insert_batch_p50_ms": ms(statistics.median(insert_times)),
               "copy_batch_p50_ms": ms(statistics.median(copy_times))}
    ratio = api_rate / ins_rate
    note = (f"per 500-turn batch (p50): API {ms(statistics.median(api_times)):.1f} ms, INSERT "
            f"{ms(statistics.median(insert_times)):.1f} ms, COPY {ms(statistics.median(copy_times)):.1f} ms")
    return [
        Figure("ingest_rate", "ingestion: turns/s through POST …/turns (batches of 500)", round(api_rate), "turns/s",
               round(ins_rate), "raw psycopg multi-row INSERT, same rows and columns", round(ratio, 3),
               "ratio >= 0.25", ratio >= 0.25, details, note),
        Figure("ingest_vs_copy", "ingestion vs COPY (second reference)", round(api_rate), "turns/s", round(copy_rate),
               "raw psycopg COPY, same rows", round(api_rate / copy_rate, 3)),
    ]


# --- 4. scaling with history ------------------------------------------------------------------


async def scaling(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    agent = "hist-agent"
    await api.agent(ns, agent)
    await api.session(ns, "hist", [agent])
    speakers = ["user", agent]

    # History through the API, batches of 1000 (ENGRAM_MAX_TURNS_PER_BATCH), then integrated once.
    batch_times = []
    t0 = time.perf_counter()
    for _ in range(cfg.history_turns // 1000):
        raw = api.client.build("POST", f"/v1/namespaces/{ns}/sessions/hist/turns", {"turns": text.turns(speakers, 1000)})
        t1 = time.perf_counter()
        resp = await api.client.send(raw)
        batch_times.append(time.perf_counter() - t1)
        if resp.status != 201:
            raise RuntimeError(f"history append -> {resp.status}: {resp.body[:300]!r}")
    build = time.perf_counter() - t0
    ctx.say(f"{cfg.history_turns} history turns appended in {build:.1f}s "
            f"(batch p50 first 5: {ms(statistics.median(batch_times[:5]))} ms, last 5: "
            f"{ms(statistics.median(batch_times[-5:]))} ms)")
    t0 = time.perf_counter()
    first_integration, job = await api.integrate_and_wait(ns, "hist", timeout=900)
    ctx.say(f"history integrated once in {first_integration:.1f}s")

    sweep: dict[str, dict[int, list[float]]] = {"fresh": {}, "history": {}}
    server: dict[str, dict[int, list[float]]] = {"fresh": {}, "history": {}}  # job started_at → finished_at
    clean_appends: list[float] = []  # 1000 turns appended to the history session with nothing pending
    sizes = sorted(set(cfg.sweep) | {cfg.headline_turns})
    k = 0
    for n in sizes:
        reps = cfg.headline_reps if n == cfg.headline_turns else cfg.sweep_reps
        for _ in range(reps):
            k += 1
            fresh = f"fresh-{k}"
            await api.session(ns, fresh, [agent])
            await append_all(api, ns, fresh, text.turns(speakers, n))
            t, job = await api.integrate_and_wait(ns, fresh)
            sweep["fresh"].setdefault(n, []).append(t)
            server["fresh"].setdefault(n, []).append(_secs(job["finished_at"]) - _secs(job["started_at"]))
            turns = text.turns(speakers, n)
            if n == 1000:  # one batch, timed like the history batches: request built beforehand
                raw = api.client.build("POST", f"/v1/namespaces/{ns}/sessions/hist/turns", {"turns": turns})
                t0 = time.perf_counter()
                resp = await api.client.send(raw)
                clean_appends.append(time.perf_counter() - t0)
                if resp.status != 201:
                    raise RuntimeError(f"append -> {resp.status}: {resp.body[:300]!r}")
            else:
                await append_all(api, ns, "hist", turns)
            t, job = await api.integrate_and_wait(ns, "hist")
            sweep["history"].setdefault(n, []).append(t)
            server["history"].setdefault(n, []).append(_secs(job["finished_at"]) - _secs(job["started_at"]))
        ctx.say(f"{n} new turns: fresh {ms(statistics.median(sweep['fresh'][n]))} ms, "
                f"after {cfg.history_turns} turns {ms(statistics.median(sweep['history'][n]))} ms")
    h = statistics.median(sweep["history"][cfg.headline_turns])
    f = statistics.median(sweep["fresh"][cfg.headline_turns])
    ratio = h / f
    details = {
        "history_turns": cfg.history_turns, "new_turns": cfg.headline_turns, "reps": cfg.headline_reps,
        "history_build_s": round(build, 1), "history_build_turns_per_s": round(cfg.history_turns / build),
        "append_1000_p50_ms_first5": ms(statistics.median(batch_times[:5])),
        "append_1000_p50_ms_last5": ms(statistics.median(batch_times[-5:])),
        "append_1000_p50_ms_nothing_pending": ms(statistics.median(clean_appends)) if clean_appends else None,
        "first_integration_s": round(first_integration, 2),
        "sweep_ms": {kind: {str(n): [ms(x) for x in v] for n, v in d.items()} for kind, d in sweep.items()},
        "run_ms_p50": {kind: {str(n): ms(statistics.median(v)) for n, v in d.items()} for kind, d in server.items()},
    }
    note = (f"history built through the API in {build:.0f} s ({cfg.history_turns / build:,.0f} turns/s), integrated at "
            f"once in {first_integration:.1f} s; job run time p50 by new turns, fresh / history: " +
            ", ".join(f"{n}: {ms(statistics.median(server['fresh'][n])):.0f}/{ms(statistics.median(server['history'][n])):.0f} ms"
                      for n in sizes))
    figs = [
        Figure("history_ratio", f"scaling: integrate {cfg.headline_turns} new turns after {cfg.history_turns:,} "
               "integrated turns (median)", ms(h), "ms", ms(f), "same on a fresh session", round(ratio, 3),
               "ratio <= 1.3", ratio <= 1.3, details, note),
    ]
    if clean_appends:
        last5 = statistics.median(batch_times[-5:])
        clean = statistics.median(clean_appends)
        figs.append(Figure(
            "append_backlog", f"append 1000 turns with ~{cfg.history_turns // 1000}k turns pending (not integrated), p50",
            ms(last5), "ms", ms(clean), "same session, nothing pending", round(last5 / clean, 2)))
    return figs


# --- 5. worker throughput ---------------------------------------------------------------------


POOL_AGENTS = 16


async def throughput(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    n = cfg.tp_sessions
    await limited([api.agent(ns, f"tp-{a}") for a in range(POOL_AGENTS)], CONCURRENCY)

    async def setup(r: int, i: int) -> None:
        s = f"tp{r}-{i}"
        a = f"tp-{i % POOL_AGENTS}"
        await api.session(ns, s, [a])
        await api.append(ns, s, [{"speaker": a, "content": text.sentence()}])

    from bench import raw_celery

    rds = raw_celery._client()

    def raw_round() -> tuple[float, float]:
        """n no-ops sent at once to the raw workers: (tasks/s, raw worker CPU ms per task)."""
        key = f"bench:tp:{secrets.token_hex(4)}"
        c0 = ctx.cpu.snapshot()
        t0 = time.perf_counter()
        for i in range(n):
            raw_celery.send(key, str(i))
        for _ in range(n):
            if rds.blpop([key], timeout=60) is None:
                raise RuntimeError("raw Celery no-ops did not complete")
        rate = n / (time.perf_counter() - t0)
        return rate, ctx.cpu.seconds(c0, ctx.cpu.snapshot())["raw workers"] * 1000 / n

    raw_round()  # warm-up
    raw_rates, raw_cpu_ms = [], []
    rates, submit_rates, walls, cpus, cpu_ms, pg_conns = [], [], [], [], [], []
    for r in range(cfg.tp_rounds):
        t0 = time.perf_counter()
        await limited([setup(r, i) for i in range(n)], CONCURRENCY)
        ctx.say(f"round {r + 1}: {n} sessions prepared in {time.perf_counter() - t0:.1f}s")
        await ctx.drain()
        reqs = [api.client.build("POST", f"/v1/namespaces/{ns}/sessions/tp{r}-{i}/integrate") for i in range(n)]
        if r == 0:
            ctx.profiler.start("throughput", ctx.worker_targets())
        c0, pg0 = ctx.cpu.snapshot(), ctx.pg_sessions()
        start = time.time()
        res = await run_load(api.client, reqs, CONCURRENCY, keep=True)
        if res.statuses != {202: n}:
            raise RuntimeError(f"throughput submit statuses {res.statuses}")
        ids = [resp.json()["id"] for resp in res.responses]  # type: ignore[union-attr]
        deadline = time.monotonic() + 600
        while True:
            done, last, ok = ctx.sql(
                "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), max(finished_at), "
                "count(*) FILTER (WHERE status = 'succeeded') FROM jobs WHERE id = ANY(%s)", (ids,))[0]
            if done == n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"throughput: {done}/{n} jobs finished after 600 s")
            ctx.procs.check_alive()
            await asyncio.sleep(0.02)
        if ok != n:
            raise RuntimeError(f"throughput: only {ok}/{n} jobs succeeded")
        wall = last.timestamp() - start
        cpus.append(ctx.cpu_since(c0))
        secs = ctx.cpu.seconds(c0, ctx.cpu.snapshot())
        cpu_ms.append({k: secs[k] * 1000 / n for k in ("workers", "api", "postgres")})
        await asyncio.sleep(1.1)  # backends flush their statistics at most once a second
        pg_conns.append((ctx.pg_sessions() - pg0) / n)
        if r == 0:
            ctx.profiler.stop()
        rates.append(n / wall)
        walls.append(wall)
        submit_rates.append(res.rate)
        raw_rate, raw_ms = raw_round()  # right after: the reference sees the same machine
        raw_rates.append(raw_rate)
        raw_cpu_ms.append(raw_ms)
        ctx.say(f"round {r + 1}: {n} integrations in {wall:.2f}s = {n / wall:.1f}/s (submitted at {res.rate:.0f}/s); "
                f"raw Celery {raw_rate:.0f}/s")

    rate, ref = statistics.median(rates), statistics.median(raw_rates)
    ctx.say(f"integrations {rate:.1f}/s; raw Celery no-ops {ref:.0f}/s")
    ratio = statistics.median(e / w for e, w in zip(rates, raw_rates))
    details = {"jobs_per_round": n, "rounds": cfg.tp_rounds, "rates": [round(x, 1) for x in rates],
               "walls_s": [round(x, 2) for x in walls], "submit_rates": [round(x) for x in submit_rates],
               "raw_rates": [round(x) for x in raw_rates],
               "round_ratios": [round(e / w, 4) for e, w in zip(rates, raw_rates)],
               "session": "1 participant, 1 turn", "workers": "2 × --concurrency 1 (prefork)",
               "cpu_pct_of_core": cpus[len(cpus) // 2],
               "cpu_ms_per_job": {k: round(statistics.median(c[k] for c in cpu_ms), 2) for k in cpu_ms[0]},
               "raw_worker_cpu_ms_per_task": round(statistics.median(raw_cpu_ms), 2),
               "pg_connections_opened_per_job": round(statistics.median(pg_conns), 3)}
    per_job = details["cpu_ms_per_job"]
    note = (f"rounds: {', '.join(f'{x:.0f}' for x in rates)} jobs/s; CPU per job: workers {per_job['workers']:.1f} ms, "
            f"api {per_job['api']:.1f} ms, postgres {per_job['postgres']:.1f} ms; raw Celery worker CPU per no-op "
            f"{details['raw_worker_cpu_ms_per_task']:.1f} ms; the API accepted the {n} submits at "
            f"{statistics.median(submit_rates):.0f} req/s")
    return [Figure("throughput", "worker throughput: trivial integrations finished/s, 2 worker processes",
                   round(rate, 1), "jobs/s", round(ref, 1), "raw Celery no-ops/s, 2 worker processes",
                   round(ratio, 4), "ratio >= 0.25", ratio >= 0.25, details, note)]


# --- 6. memory ---------------------------------------------------------------------------------


def tree_rss(pid: int) -> tuple[int, list[int]]:
    import psutil

    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total, sorted(q.pid for q in procs)


async def memory(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    n_sessions = CONCURRENCY
    await limited([api.agent(ns, f"tp-{a}") for a in range(POOL_AGENTS)], CONCURRENCY)
    await limited([api.session(ns, f"mem-{i}", [f"tp-{i % POOL_AGENTS}"]) for i in range(n_sessions)], CONCURRENCY)
    await ctx.drain()
    workers = {name: ctx.procs.pid(name) for name in ("w1", "w2")}
    before = {name: tree_rss(pid) for name, pid in workers.items()}
    samples: list[tuple[float, dict[str, int]]] = []
    issued = done = 0
    start = time.perf_counter()

    async def client(i: int) -> None:
        nonlocal issued, done
        s, a = f"mem-{i}", f"tp-{i % POOL_AGENTS}"
        while issued < cfg.memory_jobs:
            issued += 1
            await api.append(ns, s, [{"speaker": a, "content": text.sentence()}])
            await api.integrate_and_wait(ns, s)
            done += 1

    async def sampler() -> None:
        last_report = time.perf_counter()
        while True:
            samples.append((round(time.perf_counter() - start, 1), {k: tree_rss(p)[0] for k, p in workers.items()}))
            if time.perf_counter() - last_report > 15:
                last_report = time.perf_counter()
                ctx.say(f"… {done}/{cfg.memory_jobs} jobs, {done / (last_report - start):.1f}/s")
            await asyncio.sleep(1.0)

    c0 = ctx.cpu.snapshot()
    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.gather(*(client(i) for i in range(n_sessions)))
    finally:
        sampling.cancel()
    elapsed = time.perf_counter() - start
    mem_cpu = ctx.cpu_since(c0)
    await ctx.drain()
    await asyncio.sleep(1.0)
    after = {name: tree_rss(pid) for name, pid in workers.items()}
    mb = 1024 * 1024
    growth = {k: (after[k][0] - before[k][0]) / mb for k in workers}
    recycled = {k: before[k][1] != after[k][1] for k in workers}
    worst = max(growth, key=lambda k: growth[k])
    ctx.say(f"{cfg.memory_jobs} jobs in {elapsed:.0f}s; RSS growth " +
            ", ".join(f"{k} {before[k][0] / mb:.1f} → {after[k][0] / mb:.1f} MB" for k in workers))
    details = {
        "jobs": cfg.memory_jobs, "elapsed_s": round(elapsed, 1), "jobs_per_s": round(cfg.memory_jobs / elapsed, 1),
        "rss_before_mb": {k: round(v[0] / mb, 1) for k, v in before.items()},
        "rss_after_mb": {k: round(v[0] / mb, 1) for k, v in after.items()},
        "growth_mb": {k: round(v, 1) for k, v in growth.items()},
        "pool_child_recycled": recycled, "cpu_pct_of_core": mem_cpu,
        "workload": f"{n_sessions} clients, each: append 1 turn, integrate, wait; 1 participant",
        "samples_mb": [(t, {k: round(v / mb, 1) for k, v in d.items()}) for t, d in samples[:: max(1, len(samples) // 60)]],
    }
    value = growth[worst]
    note = (f"{cfg.memory_jobs:,} jobs in {elapsed:.0f} s ({cfg.memory_jobs / elapsed:.0f}/s); " +
            ", ".join(f"{k} {before[k][0] / mb:.0f} → {after[k][0] / mb:.0f} MB" for k in workers) +
            ("; a pool child was recycled (worker_max_memory_per_child)!" if any(recycled.values()) else
             "; no pool child recycled"))
    return [Figure("memory_growth", f"worker RSS growth over {cfg.memory_jobs:,} jobs (worst worker tree: main + pool child)",
                   round(value, 1), "MB", round(before[worst][0] / mb, 1), f"RSS of {worst} before",
                   round(after[worst][0] / before[worst][0], 3), "growth <= 20 MB", value <= 20 and not any(recycled.values()),
                   details, note)]
