"""The dev set through Engram's API (see bench/recall_dev.py, **Loading**): each conversation's
agent, sessions and turns, the sessions' integration jobs, and the questions asked through recall."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx

from bench.recall_dev_set import Conversation, DevSet, Question, Session
from bench.recall_reference import KS

LIMIT = max(KS)  # memories asked per recall

Log = Callable[[str], None]
Found = list[list[tuple[str, int]]]  # per recalled memory, best first: the (session, seq) it cites


def call(http: httpx.Client, method: str, url: str, ok: tuple[int, ...] = (), **kw: Any) -> Any:
    """One request; retried when it surely was not handled (no connection, 429, 503). Raises on an
    error status other than those in ``ok``."""
    for attempt in range(6):
        try:
            r = http.request(method, url, **kw)
        except httpx.ConnectError:
            if attempt == 5:
                raise
            time.sleep(0.5 * 2**attempt)
            continue
        if r.status_code in (429, 503) and attempt < 5:
            time.sleep(float(r.headers.get("Retry-After") or 0.5 * 2**attempt))
            continue
        if r.status_code >= 300 and r.status_code not in ok:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None
    raise AssertionError("unreachable")


def _turns(c: Conversation, s: Session) -> list[dict[str, Any]]:
    return [{"speaker": c.agent if speaker == "assistant" else speaker, "content": text,
             "occurred_at": (s.date + timedelta(seconds=n)).isoformat()} for n, (speaker, text) in enumerate(s.turns)]


def _load_conversation(http: httpx.Client, base: str, c: Conversation, jobs: list[str] | None) -> None:
    """The agent, its sessions with their turns, and each session's integration when ``jobs`` is a
    list (the jobs' ids are appended to it as they are submitted). A session already there with all
    its turns is left as it is (a load that stopped half way can be run again)."""
    call(http, "PUT", f"{base}/agents/{c.agent}", json={})
    for s in c.sessions:
        made = call(http, "POST", f"{base}/sessions", ok=(409,),
                     json={"name": s.name, "data": {"longmemeval_session": s.source, "date": s.date.isoformat()}})
        if made is not None and made.get("name") == s.name:
            count = 0
        else:
            count = call(http, "GET", f"{base}/sessions/{s.name}")["turn_count"]
        call(http, "PUT", f"{base}/sessions/{s.name}/participants/{c.agent}")
        if count == 0:
            got = call(http, "POST", f"{base}/sessions/{s.name}/turns", json={"turns": _turns(c, s)})
            count = got["last_seq"]
            if got["first_seq"] != 1:
                raise RuntimeError(f"{s.name}: turns got seqs {got['first_seq']}..{count}, not from 1")
        if count != len(s.turns):
            raise RuntimeError(f"{s.name} holds {count} turns, the set {len(s.turns)}: use another namespace")
        if jobs is not None:
            jobs.append(call(http, "POST", f"{base}/sessions/{s.name}/integrate")["id"])  # list.append: atomic


def _wait(http: httpx.Client, base: str, jobs: Sequence[str], timeout: float, log: Log) -> list[dict[str, Any]]:
    """Each job once it has finished (in the given order); raises if one failed or time ran out."""
    deadline = time.monotonic() + timeout
    done: list[dict[str, Any]] = []
    said = time.monotonic()
    for job in jobs:
        while True:
            got = call(http, "GET", f"{base}/jobs/{job}", params={"wait": 10})
            if got["status"] == "succeeded":
                done.append(got)
                break
            if got["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"integration {job} of {got['session']} ended {got['status']}: {got.get('error')}")
        if time.monotonic() - said > 30:
            said = time.monotonic()
            log(f"… {len(done)}/{len(jobs)} sessions integrated")
    return done


def load(http: httpx.Client, ns: str, ds: DevSet, *, concurrency: int = 8, integrate_after: bool = False,
         timeout: float = 7200, log: Log = print) -> dict[str, Any]:
    """Load and integrate every conversation of ``ds``; timings and job figures."""
    base = f"/v1/namespaces/{ns}"
    call(http, "PUT", base, json={})
    t0 = time.perf_counter()
    jobs: list[str] = []  # in the order they were submitted, which is about the order they run in
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda c: _load_conversation(http, base, c, None if integrate_after else jobs),
                      ds.conversations))
    t1 = time.perf_counter()
    log(f"loaded {len(ds.conversations)} conversations, {sum(len(c.sessions) for c in ds.conversations)} sessions, "
        f"{ds.turns} turns in {t1 - t0:.0f}s")
    if integrate_after:
        # Round robin over conversations: each agent's sessions still go in haystack order.
        longest = max((len(c.sessions) for c in ds.conversations), default=0)
        for k in range(longest):
            for c in ds.conversations:
                if k < len(c.sessions):
                    jobs.append(call(http, "POST", f"{base}/sessions/{c.sessions[k].name}/integrate")["id"])
    done = _wait(http, base, jobs, timeout, log)
    t2 = time.perf_counter()
    started = [datetime.fromisoformat(j["started_at"]) for j in done if j.get("started_at")]
    finished = [datetime.fromisoformat(j["finished_at"]) for j in done if j.get("finished_at")]
    busy = sum((datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["started_at"])).total_seconds()
               for j in done if j.get("started_at") and j.get("finished_at"))
    memories = sum(p.get("memories_created", 0) for j in done for p in (j.get("result") or {}).get("participants", []))
    out = {"conversations": len(ds.conversations), "sessions": len(jobs), "turns": ds.turns,
           "load_s": round(t1 - t0, 1), "integrated_s": round(t2 - t0, 1),
           "integrate_after_load_s": round(t2 - t1, 1), "integrate_after": integrate_after,
           "jobs_busy_s": round(busy, 1), "jobs_span_s": round((max(finished) - min(started)).total_seconds(), 1)
           if started and finished else None, "memories_created": memories, "concurrency": concurrency}
    log(f"integrated {len(jobs)} sessions: all done {t2 - t0:.0f}s after the load began ({t2 - t1:.0f}s after it "
        f"ended); jobs ran {out['jobs_busy_s']}s in all; {memories} memories")
    return out


def ask(http: httpx.Client, ns: str, questions: Sequence[Question]) -> tuple[dict[str, Found], list[float]]:
    """Each question through recall (limit 10) for its agent: per question id, the turns each
    recalled memory cites, best first; and the latencies in seconds."""
    found: dict[str, Found] = {}
    latencies: list[float] = []
    for q in questions:
        t0 = time.perf_counter()
        got = call(http, "POST", f"/v1/namespaces/{ns}/agents/{q.agent}/recall", json={"query": q.text, "limit": LIMIT})
        latencies.append(time.perf_counter() - t0)
        found[q.id] = [[(m["session"], seq) for seq in m["evidence"]] for m in got["items"]]
    return found, latencies
