"""A soak with a count: many jobs through Engram on separate hosts while faults come every ~20 s.

    python -m tests.hosts.soak [--jobs 20000] [--minutes 30] [--every 20] [--seed 1]

Clients on the client host append two turns to one of the sessions and ask for its integration,
each request with an Idempotency-Key, retried with the same key until answered 2xx (a retry of an
accepted request is answered from the key, never applied again). Meanwhile a fault is injected
every ``--every`` seconds, drawn from: a worker cut off from PostgreSQL or from Redis, the API
cut off from Redis or PostgreSQL, PostgreSQL crashing, Redis restarting empty, a worker killed
(kill -9, then started again) and a worker frozen past its lease (SIGSTOP, then SIGCONT). Each
fault lasts 10 s.

At the end, once the jobs have drained, it counts in SQL: distinct accepted jobs and how many
succeeded (equal), turns stored against turns accepted (equal: no append applied twice), turns
integrated more than once (0: no observation twice for one turn), participants not integrated
up to their last turn (0) and jobs still queued or running (0). It prints the counts and the
faults; the exit status says whether every count holds. ``make soak`` runs it; the host tests
run a short one.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY
from tests.hosts.cluster import Cluster, Heal, cluster

NS = "soak"
SESSIONS = 24
HOLD = 10.0
WORDS = ["osaka", "umeda", "invoice", "rounding", "tax", "billing", "migration", "deadline", "grace", "ledger",
         "refund", "quota", "tower", "payroll", "vendor", "audit", "cache", "latency", "cluster", "shard", "replica",
         "backup", "restore", "token", "rotation"]


@dataclass
class Tally:
    accepted_jobs: set[str] = field(default_factory=set)  # distinct: a request may join a queued job
    requests: int = 0  # integrate requests accepted
    accepted_turns: int = 0
    retries: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    faults: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _sentence(rng: random.Random, n: int) -> str:
    return f"Item {n}: " + " ".join(rng.choice(WORDS) for _ in range(8)) + f" {rng.randrange(10**9)}."


class Soak:
    def __init__(self, c: Cluster, jobs: int, minutes: float, every: float, seed: int,
                 faults: list[tuple[str, Callable[[], Heal]]] | None = None) -> None:
        self.c, self.jobs, self.deadline, self.every = c, jobs, time.monotonic() + minutes * 60, every
        self.chosen_faults = faults
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.next = 0
        self.done = threading.Event()

    # --- the clients ----------------------------------------------------------------------------

    def _post(self, client: httpx.Client, path: str, key: str, body: dict[str, Any] | None) -> Any:
        """POST with an Idempotency-Key until a 2xx (the same key each time); its JSON."""
        while True:
            try:
                r = client.post(path, json=body, headers={"Idempotency-Key": key})
                with self.tally.lock:
                    self.tally.answers[r.status_code] += 1
                if r.is_success:
                    return r.json()
                if r.status_code < 500 and r.status_code != 429:
                    raise RuntimeError(f"POST {path} -> {r.status_code} {r.text}")
            except httpx.HTTPError:
                with self.tally.lock:
                    self.tally.answers[0] += 1
            with self.tally.lock:
                self.tally.retries += 1
            time.sleep(0.5)

    def _client(self, worker: int) -> None:
        rng = random.Random(worker)
        with httpx.Client(base_url=self.c.api_url + f"/v1/namespaces/{NS}", timeout=30,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            while not self.done.is_set():
                with self.tally.lock:
                    n, self.next = self.next, self.next + 1
                if n >= self.jobs or time.monotonic() > self.deadline:
                    return
                session = f"s{n % SESSIONS}"
                turns = [{"speaker": "user", "content": _sentence(rng, n)},
                         {"speaker": f"a{n % SESSIONS}", "content": _sentence(rng, n)}]
                self._post(client, f"/sessions/{session}/turns", f"turns-{n}", {"turns": turns})
                job = self._post(client, f"/sessions/{session}/integrate", f"job-{n}", None)
                with self.tally.lock:
                    self.tally.accepted_turns += len(turns)
                    self.tally.accepted_jobs.add(job["id"])
                    self.tally.requests += 1

    # --- the faults -----------------------------------------------------------------------------

    def _faults(self) -> list[tuple[str, Callable[[], Heal]]]:
        c = self.c
        return [
            ("w1 cut from PostgreSQL", lambda: c.cut("w1", "data")), ("w2 cut from Redis", lambda: c.cut("w2", "broker")),
            ("API cut from Redis", lambda: c.cut("api", "broker")), ("API cut from PostgreSQL", lambda: c.cut("api", "data")),
            ("PostgreSQL crash and restart", c.crash_postgres), ("Redis restart (empty)", c.wipe_redis),
            ("w1 killed (kill -9) and started again", lambda: c.kill_worker("w1")),
            ("w2 frozen (SIGSTOP) past its lease", lambda: c.freeze_worker("w2")),
        ]

    def _inject(self) -> None:
        faults = self.chosen_faults if self.chosen_faults is not None else self._faults()
        start = time.monotonic()
        order = list(range(len(faults)))
        while not self.done.wait(self.every - HOLD):
            if not order:
                if self.chosen_faults is not None:
                    return  # the faults given are injected once each
                order = list(range(len(faults)))
                self.rng.shuffle(order)
            name, apply = faults[order.pop(0)]
            self.tally.faults.append((round(time.monotonic() - start, 1), name))
            print(f"  {time.monotonic() - start:6.1f}s  fault: {name}", flush=True)
            heal = apply()
            self.done.wait(HOLD)
            heal()

    # --- the run --------------------------------------------------------------------------------

    def run(self, clients: int = 6) -> dict[str, int]:
        c = self.c
        c.call("PUT", f"/namespaces/{NS}", {})
        for i in range(SESSIONS):
            c.call("PUT", f"/namespaces/{NS}/agents/a{i}", {})
            c.call("POST", f"/namespaces/{NS}/sessions", {"name": f"s{i}"})
            c.call("PUT", f"/namespaces/{NS}/sessions/s{i}/participants/a{i}")
        injector = threading.Thread(target=self._inject, daemon=True)
        injector.start()
        threads = [threading.Thread(target=c.client.call, args=(self._client, i), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.done.set()
        injector.join()
        c.eventually(lambda: self.open_jobs() == 0, 300, "the jobs to drain")
        return self.counts()

    def open_jobs(self) -> int:
        return int(self.c.sql("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0])

    def counts(self) -> dict[str, int]:
        c, t = self.c, self.tally
        ids = sorted(t.accepted_jobs)
        succeeded = c.sql("SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status = 'succeeded'", (ids,))[0][0]
        stored = c.sql("SELECT count(*) FROM turns t JOIN sessions s ON s.id = t.session_id "
                       "JOIN namespaces n ON n.id = s.namespace_id WHERE n.name = %s", (NS,))[0][0]
        twice = c.sql("SELECT count(*) FROM (SELECT m.session_id, m.evidence FROM memories m "
                      "WHERE m.kind = 'observation' GROUP BY m.session_id, m.generation, m.evidence "
                      "HAVING count(*) > 1) d")[0][0]
        behind = c.sql("SELECT count(*) FROM participants p JOIN sessions s ON s.id = p.session_id "
                       "WHERE p.last_integration_turn < "
                       "(SELECT coalesce(max(seq), 0) FROM turns t WHERE t.session_id = s.id)")[0][0]
        return {"integrate requests": t.requests, "accepted jobs": len(ids), "succeeded": int(succeeded),
                "turns accepted": t.accepted_turns,
                "turns stored": int(stored), "turns integrated twice": int(twice),
                "participants behind": int(behind), "stuck": self.open_jobs(), "retried requests": t.retries,
                "faults": len(t.faults)}


def holds(counts: dict[str, int]) -> bool:
    return (counts["accepted jobs"] == counts["succeeded"] and counts["turns accepted"] == counts["turns stored"]
            and counts["turns integrated twice"] == 0 and counts["participants behind"] == 0 and counts["stuck"] == 0)


def soak(jobs: int, minutes: float, every: float, seed: int) -> tuple[dict[str, int], list[tuple[float, str]]]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-soak-"))
    try:
        with cluster("soak", tmp) as c:
            s = Soak(c, jobs, minutes, every, seed)
            counts = s.run()
            return counts, s.tally.faults
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs to submit (default 20000)")
    p.add_argument("--minutes", type=float, default=30.0, help="stop submitting after this long (default 30)")
    p.add_argument("--every", type=float, default=20.0, help="seconds between faults (default 20)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    counts, faults = soak(args.jobs, args.minutes, args.every, args.seed)
    print(f"\nsoak: {time.monotonic() - t0:.0f} s, {len(faults)} faults")
    for name, value in counts.items():
        print(f"  {name:>24}: {value}")
    ok = holds(counts)
    print("every count holds" if ok else "A COUNT DOES NOT HOLD")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
