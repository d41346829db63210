"""Deterministic conversation text and the Engram API calls the bench makes."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from typing import Any

from bench.loadgen import Client

COMMON = (  # noqa: SIM905 - a sentence reads better than a list of 80 strings
    "the a to of and in is it you that for on with as this be at have are we not but they our can "
    "what about will would should could there their when which how all more some then than also just "
    "because after before need next plan team budget release deadline customer meeting design review "
    "database migration deploy server latency memory error feature launch report contract price "
    "schedule travel hotel flight dinner project client invoice roadmap sprint ticket incident backup"
).split()


def _pseudo_words(rng: random.Random, n: int) -> list[str]:
    syll = ["ka", "lo", "mi", "ren", "tor", "vas", "qui", "del", "son", "ar", "el", "nu", "pha", "zet", "bri", "go"]
    return ["".join(rng.choice(syll) for _ in range(rng.randint(2, 3))) for _ in range(n)]


class Text:
    """Turn contents: sentences over a mixed vocabulary, same seed → same text."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.vocab = COMMON + _pseudo_words(self.rng, 600)

    def sentence(self, words: int | None = None) -> str:
        n = words or self.rng.randint(10, 30)
        ws = [self.rng.choice(self.vocab) for _ in range(n)]
        return " ".join(ws).capitalize() + self.rng.choice([".", ".", ".", "?", "!"])

    def turns(self, speakers: list[str], n: int) -> list[dict[str, Any]]:
        return [{"speaker": speakers[i % len(speakers)], "content": self.sentence()} for i in range(n)]


FINISHED = ("succeeded", "failed", "cancelled")


class Api:
    """Engram calls over the lean client (keep-alive, admin key)."""

    def __init__(self, port: int, admin_key: str) -> None:
        self.client = Client("127.0.0.1", port, {"Authorization": f"Bearer {admin_key}"})

    async def call(self, method: str, path: str, body: Any = None,
                   expect: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        return (await self.client.request(method, "/v1" + path, body, expect=expect)).json()

    async def namespace(self, ns: str) -> None:
        await self.call("PUT", f"/namespaces/{ns}", {})

    async def agent(self, ns: str, name: str) -> None:
        await self.call("PUT", f"/namespaces/{ns}/agents/{name}", {})

    async def session(self, ns: str, name: str, participants: Sequence[str] = ()) -> None:
        await self.call("POST", f"/namespaces/{ns}/sessions", {"name": name})
        for p in participants:
            await self.call("PUT", f"/namespaces/{ns}/sessions/{name}/participants/{p}")

    async def append(self, ns: str, session: str, turns: list[dict[str, Any]]) -> None:
        resp = await self.client.request("POST", f"/v1/namespaces/{ns}/sessions/{session}/turns", {"turns": turns},
                                         expect=(201,))
        del resp  # the echoed turns are not needed

    async def integrate(self, ns: str, session: str) -> dict[str, Any]:
        job: dict[str, Any] = await self.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate", expect=(200, 202))
        return job

    async def wait(self, ns: str, job_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = await self.call("GET", f"/namespaces/{ns}/jobs/{job_id}?wait=30")
            if job["status"] in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout}s: {json.dumps(job)[:500]}")

    async def integrate_and_wait(self, ns: str, session: str, timeout: float = 600) -> tuple[float, dict[str, Any]]:
        """Wall time from POST …/integrate to the job seen finished (long-poll), and the job."""
        t0 = time.perf_counter()
        job = await self.integrate(ns, session)
        job = await self.wait(ns, job["id"], timeout)
        elapsed = time.perf_counter() - t0
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {json.dumps(job.get('error'))[:500]}")
        return elapsed, job


async def append_all(api: Api, ns: str, session: str, turns: list[dict[str, Any]], batch: int = 1000) -> None:
    for i in range(0, len(turns), batch):
        await api.append(ns, session, turns[i : i + batch])


async def limited(coros, limit: int = 32):
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
