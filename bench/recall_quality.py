"""Recall quality through the API: load the recall set, integrate it with jobs, ask every question.

The figure is the one the BM25 reference reports (bench/recall_reference.py): evidence recall@k,
the share of a question's evidence turns cited by the k best memories recalled for it (a
reflection cites the turns it rests on, an observation its own turn). Used by the bench's recall
phase against the real system, and runnable alone against any Engram:

    python -m bench.recall_quality http://127.0.0.1:8000 [admin key]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench.recall_reference import KS, bm25_rankings, evidence_recall, report
from bench.recall_set import KINDS, RecallSet, Turn, build

# An httpx.Client with the API's base URL (FastAPI's TestClient is one too).
Http = httpx.Client


def _ok(response: Any) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json() if response.content else None


def _sessions(http: Http, base: str, rs: RecallSet) -> None:
    """The namespace, its agents, and every conversation as a session with its participants bound."""
    _ok(http.put(f"{base}", json={}))
    for agent in sorted({p for c in rs.conversations for p in c.participants}):
        _ok(http.put(f"{base}/agents/{agent}", json={}))
    for c in rs.conversations:
        _ok(http.post(f"{base}/sessions", json={"name": c.session}))
        for p in c.participants:
            _ok(http.put(f"{base}/sessions/{c.session}/participants/{p}"))


def _turns(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    return [{"speaker": t.speaker, "content": t.content, "occurred_at": t.occurred_at.isoformat(),
             **({"visible_to": list(t.visible_to)} if t.visible_to else {})} for t in turns]


def load(http: Http, ns: str, rs: RecallSet, batch: int = 500) -> None:
    """Every conversation as a session, its participants bound first, its turns in order (their
    seqs are then those of the set), with their `occurred_at`."""
    base = f"/v1/namespaces/{ns}"
    _sessions(http, base, rs)
    for c in rs.conversations:
        for start in range(0, len(c.turns), batch):
            _ok(http.post(f"{base}/sessions/{c.session}/turns", json={"turns": _turns(c.turns[start:start + batch])}))


def load_integrating_every(http: Http, ns: str, rs: RecallSet, every: int, timeout: float = 600) -> None:
    """As ``load`` then ``integrate_all``, but each session integrated after every ``every`` turns
    appended (all sessions' jobs of a round run side by side): how an agent that integrates often
    builds its memory."""
    base = f"/v1/namespaces/{ns}"
    _sessions(http, base, rs)
    for start in range(0, max(len(c.turns) for c in rs.conversations), every):
        jobs = []
        for c in rs.conversations:
            if turns := _turns(c.turns[start:start + every]):
                _ok(http.post(f"{base}/sessions/{c.session}/turns", json={"turns": turns}))
                jobs.append(_ok(http.post(f"{base}/sessions/{c.session}/integrate"))["id"])
        _wait(http, base, jobs, timeout)


def integrate_all(http: Http, ns: str, rs: RecallSet, timeout: float = 600) -> None:
    """One integration per session, run by the workers; waits for all of them."""
    base = f"/v1/namespaces/{ns}"
    _wait(http, base, [_ok(http.post(f"{base}/sessions/{c.session}/integrate"))["id"] for c in rs.conversations],
          timeout)


def _wait(http: Http, base: str, jobs: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        while True:
            got = _ok(http.get(f"{base}/jobs/{job}", params={"wait": 10}))
            if got["status"] == "succeeded":
                break
            if got["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"integration {job} ended {got['status']}: {got.get('error')}")


def ask(http: Http, ns: str, rs: RecallSet) -> tuple[dict[int, list[list[tuple[str, int]]]], list[float]]:
    """Every question through the recall endpoint: for each, the turns each recalled memory cites,
    best memory first; and the latency of each recall, in seconds."""
    per_memory: dict[int, list[list[tuple[str, int]]]] = {}
    latencies: list[float] = []
    for i, q in enumerate(rs.questions):
        started = time.perf_counter()
        items = _ok(http.post(f"/v1/namespaces/{ns}/agents/{q.agent}/recall", json={"query": q.text, "limit": max(KS)}))
        latencies.append(time.perf_counter() - started)
        per_memory[i] = [[(m["session"], s) for s in m["evidence"]] for m in items["items"]]
    return per_memory, latencies


def score(rs: RecallSet, per_memory: dict[int, list[list[tuple[str, int]]]]) -> dict[str, Any]:
    """Evidence recall@k of memory rankings (the turns cited by the k best memories), overall and
    per kind, in the shape of the BM25 reference's report."""

    def at(i: int, k: int) -> float:
        found = sorted({e for memory in per_memory[i][:k] for e in memory})
        return evidence_recall(found, rs.questions[i].evidence, len(found)) if found else 0.0

    def figures(indexes: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"questions": len(indexes)}
        for k in KS:
            out[f"recall@{k}"] = round(sum(at(i, k) for i in indexes) / len(indexes), 3) if indexes else None
        return out

    everything = list(range(len(rs.questions)))
    result = figures(everything)
    result["by_kind"] = {kind: figures([i for i in everything if rs.questions[i].kind == kind]) for kind in KINDS}
    return result


def measure(http: Http, ns: str, rs: RecallSet) -> dict[str, Any]:
    """Load, integrate, ask; Engram's recall@k beside BM25's over the raw turns."""
    load(http, ns, rs)
    integrate_all(http, ns, rs)
    per_memory, latencies = ask(http, ns, rs)
    return {"engram": score(rs, per_memory), "bm25": report(rs, bm25_rankings(rs, max(KS))),
            "latency_seconds": sorted(latencies)}


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    headers = {"Authorization": f"Bearer {sys.argv[2]}"} if len(sys.argv) > 2 else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        result = measure(http, f"recall-{int(time.time())}", build())
    for name in ("engram", "bm25"):
        print(name, {k: v for k, v in result[name].items() if k.startswith("recall@")})
        for kind, figures in sorted(result[name]["by_kind"].items()):
            print(f"  {kind:18s}", figures)


if __name__ == "__main__":
    main()
