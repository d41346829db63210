"""What the phases share: the configuration (full and quick), a figure, CPU metering, the profiler
and the context each phase runs in."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.system import SCALE_APIS, Processes, libpq
from bench.workload import Api, Text

CONCURRENCY = 32  # clients at once, in every phase that runs clients side by side
POOL_AGENTS = 16  # agents the throughput and memory sessions take turns with

# perf_counter, CPU seconds by pid, pids by part of the system, (machine busy, steal) CPU seconds
Snapshot = tuple[float, dict[int, float], dict[str, list[int]], tuple[float, float]]


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
    recall_memories: int = 100_000  # the agent whose recall latency is measured
    recall_rounds: int = 300
    scale_requests: int = 300  # scaleout: integrate requests per round and API set-up
    scale_jobs: int = 300  # scaleout: trivial jobs per round and worker set-up
    scale_rounds: int = 2
    webhook_jobs: int = 200  # webhooks: jobs whose first delivery is timed


FULL = Config(name="full", hello_warmup=2000, hello_per_round=6000, submit_warmup=200, submit_per_round=600, rounds=3,
              e2e_warmup=20, e2e_jobs=200, ingest_warmup=2, ingest_batches=20, history_turns=100_000,
              sweep=(100, 500, 1000, 2000), sweep_reps=3, headline_turns=1000, headline_reps=7,
              tp_sessions=300, tp_rounds=3, memory_jobs=5000)
QUICK = Config(name="quick", hello_warmup=500, hello_per_round=2000, submit_warmup=64, submit_per_round=200, rounds=2,
               e2e_warmup=5, e2e_jobs=40, ingest_warmup=1, ingest_batches=5, history_turns=10_000,
               sweep=(100, 1000), sweep_reps=1, headline_turns=1000, headline_reps=3,
               tp_sessions=100, tp_rounds=1, memory_jobs=300, recall_memories=10_000, recall_rounds=100,
               scale_requests=200, scale_jobs=100, scale_rounds=1, webhook_jobs=50)


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
        for proc, _ in self._running:
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

        groups = {"api": tree("api", *SCALE_APIS), "workers": tree("w1", "w2"), "scheduler": tree("scheduler"),
                  "hello": tree("hello"), "tutorial": tree("tutorial"), "raw workers": tree("r1", "r2"),
                  "bench client": [psutil.Process()]}
        groups.update(self.services.service_processes())
        return groups

    def snapshot(self) -> Snapshot:
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
        pids = {g: [p.pid for p in ps] for g, ps in members.items()}
        return time.perf_counter(), times, pids, (busy, getattr(ct, "steal", 0.0))

    def seconds(self, a: Snapshot, b: Snapshot) -> dict[str, float]:
        """CPU seconds per part between two snapshots."""
        return {g: sum(b[1].get(pid, 0.0) - a[1].get(pid, 0.0) for pid in pids) for g, pids in b[2].items()}

    def delta(self, a: Snapshot, b: Snapshot) -> dict[str, float]:
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

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.db.execute(query, params)
        return cur.fetchall() if cur.description is not None else []

    def cpu_since(self, snap: Snapshot) -> dict[str, float]:
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


def secs(iso: str) -> float:
    """A timestamp of the API (ISO 8601) in seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
