"""Webhook latency: how long after a job's finish its first delivery reaches a real receiver.

A local HTTP receiver (a thread of the bench) records when each delivery arrives; an endpoint of
the bench's namespace subscribes it to ``job.succeeded``. Jobs run one at a time (an integrate
of a few new turns, waited for), so each delivery's delay is its own: arrival minus the job's
``finished_at`` (the same machine's clock). Targets: p50 ≤ 1 s, p99 ≤ 3 s. The endpoint is
deleted at the end, so the phases after this one send no webhooks."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.phases.common import Ctx, Figure, pct, secs

TURNS = 4  # new turns per job


class Receiver:
    """Records the arrival time of each delivery, by the id of the job it reports."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                job_id = json.loads(body)["data"]["id"]
                with receiver.changed:
                    receiver.arrived.setdefault(job_id, at)
                    receiver.changed.notify_all()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/engram"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, job_id: str, timeout: float) -> float:
        """When the job's delivery arrived (epoch seconds); a RuntimeError after ``timeout``."""
        with self.changed:
            if not self.changed.wait_for(lambda: job_id in self.arrived, timeout):
                raise RuntimeError(f"no webhook for job {job_id} within {timeout:.0f} s")
            return self.arrived[job_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def run(ctx: Ctx) -> list[Figure]:
    api, ns, jobs = ctx.api, ctx.ns, ctx.cfg.webhook_jobs
    receiver = Receiver()
    hook = f"/namespaces/{ns}/webhooks/bench-latency"
    await api.call("PUT", hook, {"url": receiver.url, "events": ["job.succeeded"]})
    await api.agent(ns, "wh-a")
    await api.session(ns, "webhooks", ["wh-a"])
    delays: list[float] = []
    try:
        for _ in range(jobs):
            await api.append(ns, "webhooks", ctx.text.turns(["wh-a"], TURNS))
            _, job = await api.integrate_and_wait(ns, "webhooks")
            arrived = await asyncio.to_thread(receiver.wait_for, job["id"], 120.0)
            delays.append(arrived - secs(job["finished_at"]))
    finally:
        await api.call("DELETE", hook)
        receiver.close()
    p50, p99 = pct(delays, 50), pct(delays, 99)
    ctx.say(f"webhook first delivery after the job's finish: p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(delays):.3f} s "
            f"({jobs} jobs)")
    details = {"jobs": jobs, "p50_s": round(p50, 4), "p99_s": round(p99, 4), "max_s": round(max(delays), 4)}
    return [
        Figure("webhook_p50", "Webhook delivery p50 after the job's finish", round(p50, 4), "s",
               target="p50 <= 1 s", passed=p50 <= 1.0, details=details),
        Figure("webhook_p99", "Webhook delivery p99 after the job's finish", round(p99, 4), "s",
               target="p99 <= 3 s", passed=p99 <= 3.0, details=details),
    ]
