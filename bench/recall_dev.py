"""Recall on data we did not write: the LongMemEval_S development set.

The set is 72 questions of LongMemEval_S (Wu et al., ICLR 2025), each with its own haystack of
about 48 dated user/assistant chat sessions (about 494 turns); see its README. It is read from
``../shared/data/recall-dev/longmemeval_s.json`` relative to the project root, or from the folder
or file that ENGRAM_RECALL_DEV names, and never copied into the project. When it is missing,
``load_set`` raises ``DevSetMissing`` with a message that says where it looked; the bench's recall
phase then skips this measure with that message.

**Loading** (through the API, one namespace). Each question has its own haystack, so each
conversation gets its own agent, ``lme-<question id>``, and each of its haystack sessions an
Engram session ``<agent>-NN`` (NN: the session's position in the haystack), with the agent bound
as its only participant and the dataset's session id kept in the session's ``data``. The turns
are appended in one batch per session, so a turn ``"<session id>:<n>"`` of the dataset is seq n of
that session. ``occurred_at`` is the session's date (the dataset's local time, taken as UTC) plus
n-1 seconds. Speakers: the dataset's ``user`` stays ``user``; an ``assistant`` turn is spoken by
the agent itself (speaker = the agent's name), as an assistant's own turns are in Engram. The
built-in integrator and recall treat both alike: every turn an agent sees becomes an observation.
Each session is integrated by one job, submitted as soon as its turns are in (or, with
``integrate_after``, once everything is loaded), the sessions of one agent in haystack order, so
that its memories are written in time order. Conversations load side by side (``concurrency``
threads, one conversation per thread).

**Split** into a tuning half and a held-out half, deterministic and balanced per category: within
each of the six categories, the questions are sorted by the sha256 hex digest of their id; the
1st, 3rd, 5th, ... go to ``tune`` and the 2nd, 4th, ... to ``heldout`` (6 + 6 per category). The
``rank`` of a question is its position in that order; ``--limit N`` takes the first N questions in
(rank, category) order, so any N picks the categories and halves evenly (12: one per category and
half).

**Scoring.** Abstention questions (the asked fact was never said) and the 3 with session-level
evidence only are not asked; the report counts them. Every other question is asked through
``POST /v1/namespaces/{ns}/agents/{agent}/recall`` with ``limit`` 10 for its own agent. Evidence
recall@k is the share of the question's evidence turns cited by the k best memories (a memory's
``evidence`` are seqs of its ``session``), averaged over questions, per half and per category.
The reference, computed in the same run: BM25 over the raw turns of the question's own haystack
(bm25s, Lucene variant, k1 1.2, b 0.75, lowercase word tokens, bm25s's ``en`` stopwords, Lucene's
33): 0.807 @10 and 0.640 @5 over the 69 questions. ``bm25_ref`` is the same ranking exactly as
bench/recall_reference.py does it for the synthetic set (its tokens with the ``en_plus``
stopwords, NLTK's 179, and bm25s's default k1 1.5): 0.814 @10 and 0.676 @5, reported beside it.

**Distractors** (``add_distractors``; a BENCH-ONLY DIRECT WRITE into the ``memories`` table, never
something the API offers). For a fixed subset of the asked questions (``distractor_questions`` held-out ones, the categories
in turn, each category's in rank order: 6 by default, one per category),
each agent gets ``N`` more memories in one more session ``<agent>-distractors`` (created through
the API, no turns, not bound): copies of the integrated memories (observations and reflections,
as the integrator wrote them) of the namespace's other agents, so other sessions in the same
vocabulary. Left out of the pool: agents whose haystack holds any of the question's evidence
sessions, and every memory whose text the agent already has (filler sessions recur across
haystacks). The pool is deduplicated by text, shuffled (md5 order) and cycled up to ``N``; each
copy cites its own seq of the distractor session, keeps its kind, importance and ``occurred_at``
(the same 2022-2023 range), its speaker when not the source agent (else the target agent). They
are inserted after the agent's own memories, so they are its newest: the agent learned the facts,
then lived through N memories of other things. The subset is asked before and after; the issue's
target is recall@10 with distractors >= 0.95 x without.

Runnable alone against any Engram (``--distractors`` needs the database URL, from
``--database-url`` or ENGRAM_DATABASE_URL)::

    python -m bench.recall_dev http://127.0.0.1:8000 [admin key] [--half tune|heldout|both] [--limit N]
                                [--distractors N] [--namespace NS] [--skip-load] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bm25s
import httpx

from bench.recall_reference import KS, _tokens

ENV = "ENGRAM_RECALL_DEV"
FILE = "longmemeval_s.json"
DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "recall-dev"
CATEGORIES = ("single-session-user", "single-session-assistant", "single-session-preference", "multi-session",
              "temporal-reasoning", "knowledge-update")
HALVES = ("tune", "heldout")
LIMIT = max(KS)  # memories asked per recall
DISTRACTOR_SUFFIX = "-distractors"

# bm25s logs each index it builds (one per question here).
logging.getLogger("bm25s").setLevel(logging.WARNING)

Log = Callable[[str], None]
Found = list[list[tuple[str, int]]]  # per recalled memory, best first: the (session, seq) it cites


class DevSetMissing(RuntimeError):
    """The dev set's file is not where it is looked for."""


# --- the set -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    name: str  # the Engram session
    source: str  # the dataset's session id
    date: datetime
    turns: tuple[tuple[str, str], ...]  # (speaker in the dataset: user or assistant, text)


@dataclass(frozen=True)
class Conversation:
    id: str
    agent: str
    sessions: tuple[Session, ...]


@dataclass(frozen=True)
class Question:
    id: str
    conversation: str
    agent: str
    text: str
    category: str
    half: str
    rank: int  # position in its category's sha256 order: tune at even ranks, heldout at odd ones
    evidence: tuple[tuple[str, int], ...]  # (session name, seq); empty when session-level only
    evidence_level: str
    evidence_sessions: tuple[str, ...]  # dataset session ids
    abstention: bool

    @property
    def asked(self) -> bool:
        return not self.abstention and self.evidence_level == "turn" and bool(self.evidence)


@dataclass(frozen=True)
class DevSet:
    path: Path
    conversations: tuple[Conversation, ...]
    questions: tuple[Question, ...]

    def conversation(self, cid: str) -> Conversation:
        return next(c for c in self.conversations if c.id == cid)

    @property
    def turns(self) -> int:
        return sum(len(s.turns) for c in self.conversations for s in c.sessions)


def data_file() -> Path:
    """Where the set is read from: ENGRAM_RECALL_DEV (the folder or the file), else ../shared/data/recall-dev."""
    given = os.environ.get(ENV)
    where = Path(given).expanduser() if given else DEFAULT_DIR
    return where if where.suffix == ".json" else where / FILE


def agent_name(question_id: str) -> str:
    return "lme-" + re.sub(r"[^a-z0-9_-]", "-", question_id.lower())


def _hash(question_id: str) -> str:
    return hashlib.sha256(question_id.encode()).hexdigest()


def load_set(path: Path | None = None) -> DevSet:
    """The whole set, split into halves; DevSetMissing when the file is not there."""
    path = path or data_file()
    if not path.is_file():
        raise DevSetMissing(f"recall dev set not found: {path} (the LongMemEval_S subset; it lives outside the "
                            f"project, in ../shared/data/recall-dev, or set {ENV} to its folder or file)")
    raw = json.loads(path.read_text())
    places: dict[str, int] = {}  # question id -> rank in its category
    for category in CATEGORIES:
        ids = sorted((q["id"] for c in raw["conversations"] for q in c["questions"] if q["category"] == category),
                     key=_hash)
        places.update({qid: i for i, qid in enumerate(ids)})
    conversations: list[Conversation] = []
    questions: list[Question] = []
    for c in raw["conversations"]:
        agent = agent_name(c["id"])
        sessions: list[Session] = []
        where: dict[str, tuple[str, dict[str, int]]] = {}  # dataset session id -> (name, turn id -> seq)
        for k, s in enumerate(c["sessions"]):
            name = f"{agent}-{k:02d}"
            turns = tuple((t["speaker"], t["text"]) for t in s["turns"])
            sessions.append(Session(name, s["id"], datetime.fromisoformat(s["date"]).replace(tzinfo=UTC), turns))
            where[s["id"]] = (name, {t["id"]: n for n, t in enumerate(s["turns"], start=1)})
        conversations.append(Conversation(c["id"], agent, tuple(sessions)))
        for q in c["questions"]:
            evidence: list[tuple[str, int]] = []
            if q["evidence_level"] == "turn":
                for turn_id in q["evidence"]:
                    name, seqs = where[turn_id.rsplit(":", 1)[0]]
                    evidence.append((name, seqs[turn_id]))
            rank = places[q["id"]]
            questions.append(Question(q["id"], c["id"], agent, q["question"], q["category"], HALVES[rank % 2], rank,
                                      tuple(evidence), q["evidence_level"], tuple(q["evidence_sessions"]),
                                      bool(q["abstention"])))
    return DevSet(path, tuple(conversations), tuple(questions))


def select(ds: DevSet, halves: Sequence[str] = HALVES, limit: int | None = None) -> DevSet:
    """The questions of these halves, the first ``limit`` in (rank, category) order, and their conversations."""
    chosen = sorted((q for q in ds.questions if q.half in halves),
                    key=lambda q: (q.rank, CATEGORIES.index(q.category)))[:limit]
    ids = {q.conversation for q in chosen}
    return replace(ds, conversations=tuple(c for c in ds.conversations if c.id in ids),
                   questions=tuple(sorted(chosen, key=ds.questions.index)))


# --- the API -----------------------------------------------------------------------------------


def _call(http: httpx.Client, method: str, url: str, ok: tuple[int, ...] = (), **kw: Any) -> Any:
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
    _call(http, "PUT", f"{base}/agents/{c.agent}", json={})
    for s in c.sessions:
        made = _call(http, "POST", f"{base}/sessions", ok=(409,),
                     json={"name": s.name, "data": {"longmemeval_session": s.source, "date": s.date.isoformat()}})
        if made is not None and made.get("name") == s.name:
            count = 0
        else:
            count = _call(http, "GET", f"{base}/sessions/{s.name}")["turn_count"]
        _call(http, "PUT", f"{base}/sessions/{s.name}/participants/{c.agent}")
        if count == 0:
            got = _call(http, "POST", f"{base}/sessions/{s.name}/turns", json={"turns": _turns(c, s)})
            count = got["last_seq"]
            if got["first_seq"] != 1:
                raise RuntimeError(f"{s.name}: turns got seqs {got['first_seq']}..{count}, not from 1")
        if count != len(s.turns):
            raise RuntimeError(f"{s.name} holds {count} turns, the set {len(s.turns)}: use another namespace")
        if jobs is not None:
            jobs.append(_call(http, "POST", f"{base}/sessions/{s.name}/integrate")["id"])  # list.append: atomic


def _wait(http: httpx.Client, base: str, jobs: Sequence[str], timeout: float, log: Log) -> list[dict[str, Any]]:
    """Each job once it has finished (in the given order); raises if one failed or time ran out."""
    deadline = time.monotonic() + timeout
    done: list[dict[str, Any]] = []
    said = time.monotonic()
    for job in jobs:
        while True:
            got = _call(http, "GET", f"{base}/jobs/{job}", params={"wait": 10})
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
    _call(http, "PUT", base, json={})
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
                    jobs.append(_call(http, "POST", f"{base}/sessions/{c.sessions[k].name}/integrate")["id"])
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
        got = _call(http, "POST", f"/v1/namespaces/{ns}/agents/{q.agent}/recall", json={"query": q.text, "limit": LIMIT})
        latencies.append(time.perf_counter() - t0)
        found[q.id] = [[(m["session"], seq) for seq in m["evidence"]] for m in got["items"]]
    return found, latencies


# --- scoring -----------------------------------------------------------------------------------


def recall_at(found: Found, evidence: Sequence[tuple[str, int]], k: int) -> float:
    """The share of ``evidence`` among the turns the first ``k`` memories cite."""
    cited = {e for memory in found[:k] for e in memory}
    return len(set(evidence) & cited) / len(set(evidence))


def bm25(ds: DevSet, questions: Sequence[Question], *, as_recall_reference: bool = False
         ) -> dict[str, list[tuple[str, int]]]:
    """Per question id, the 10 best turns of its own haystack by BM25, best first (turns sharing no
    word with the question are not ranked; ties keep the haystack's order). bm25s, Lucene variant,
    k1 1.2, b 0.75, lowercase word tokens without bm25s's ``en`` stopwords (Lucene's 33); or, with
    ``as_recall_reference``, exactly as bench/recall_reference.py ranks: its tokens (``en_plus``
    stopwords, NLTK's 179) and bm25s's default k1 1.5."""

    def tokens(texts: list[str]) -> list[list[str]]:
        if as_recall_reference:
            return _tokens(texts)
        got = bm25s.tokenize(texts, lower=True, stopwords="en", return_ids=False, show_progress=False)
        return [[str(t) for t in doc] for doc in got]

    out: dict[str, list[tuple[str, int]]] = {}
    for cid in dict.fromkeys(q.conversation for q in questions):
        c = ds.conversation(cid)
        keys = [(s.name, n) for s in c.sessions for n in range(1, len(s.turns) + 1)]
        retriever = bm25s.BM25() if as_recall_reference else bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        retriever.index(tokens([text for s in c.sessions for _, text in s.turns]), show_progress=False)
        for q in questions:
            if q.conversation == cid:
                query = tokens([q.text])[0]
                scores = [float(x) for x in retriever.get_scores(query)] if query else [0.0] * len(keys)
                order = sorted((n for n in range(len(keys)) if scores[n] > 0), key=lambda n: (-scores[n], n))
                out[q.id] = [keys[n] for n in order[:LIMIT]]
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def figures(questions: Sequence[Question], runs: dict[str, dict[str, Found]],
            ratios: tuple[str, str] = ("engram", "bm25")) -> dict[str, Any]:
    """recall@5 and @10 of each run (name -> per question id, what it found) over ``questions``,
    and the ratio of the first of ``ratios`` to the second (of the unrounded means)."""
    out: dict[str, Any] = {"questions": len(questions)}
    means = {name: {k: _mean([recall_at(found[q.id], q.evidence, k) for q in questions]) for k in KS}
             for name, found in runs.items()}
    for name, by_k in means.items():
        out[name] = {f"recall@{k}": _round(m) for k, m in by_k.items()}
    top, ref = ratios
    if top in means and ref in means:
        for k in KS:
            a, b = means[top][k], means[ref][k]
            out[f"ratio@{k}"] = round(a / b, 3) if a is not None and b else None
    return out


def report(ds: DevSet, runs: dict[str, dict[str, Found]]) -> dict[str, Any]:
    """Figures overall, per half and per category within each; the questions left out and why."""
    asked = [q for q in ds.questions if q.asked]
    halves = [h for h in HALVES if any(q.half == h for q in asked)]
    out: dict[str, Any] = {
        "all": figures(asked, runs),
        "halves": {h: figures([q for q in asked if q.half == h], runs) for h in halves},
        "by_category": {h: {cat: figures([q for q in asked if q.half == h and q.category == cat], runs)
                            for cat in CATEGORIES if any(q.half == h and q.category == cat for q in asked)}
                        for h in halves},
        "not_asked": {"questions": sum(not q.asked for q in ds.questions),
                      "abstention": sum(q.abstention for q in ds.questions),
                      "session_level_evidence_only": sum(q.evidence_level != "turn" for q in ds.questions),
                      "both": sum(q.abstention and q.evidence_level != "turn" for q in ds.questions)},
        "per_question": [{"id": q.id, "half": q.half, "category": q.category,
                          **{f"{name}@{k}": round(recall_at(found[q.id], q.evidence, k), 3)
                             for name, found in runs.items() for k in KS}} for q in asked],
    }
    return out


def table(rep: dict[str, Any]) -> str:
    """The report as a text table: Engram and BM25 @5/@10 and their ratios, per half and category."""
    head = f"{'half':8s} {'category':26s} {'n':>3s}  {'engram@5':>8s} {'@10':>6s}  {'bm25@5':>7s} {'@10':>6s}  " \
           f"{'ratio@5':>7s} {'@10':>6s}  {'bm25_ref@10':>10s}"
    lines = [head, "-" * len(head)]

    def row(half: str, cat: str, f: dict[str, Any]) -> str:
        def n(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        e, b, be = f.get("engram", {}), f.get("bm25", {}), f.get("bm25_ref", {})
        return (f"{half:8s} {cat:26s} {f['questions']:3d}  {n(e.get('recall@5')):>8s} {n(e.get('recall@10')):>6s}  "
                f"{n(b.get('recall@5')):>7s} {n(b.get('recall@10')):>6s}  {n(f.get('ratio@5')):>7s} "
                f"{n(f.get('ratio@10')):>6s}  {n(be.get('recall@10')):>10s}")

    for half, cats in rep["by_category"].items():
        lines += [row(half, cat, f) for cat, f in cats.items()]
        lines.append(row(half, "(all)", rep["halves"][half]))
    lines.append(row("both", "(all)", rep["all"]))
    na = rep["not_asked"]
    lines.append(f"not asked: {na['questions']} ({na['abstention']} abstention, {na['session_level_evidence_only']} "
                 f"with session-level evidence only, {na['both']} of them both)")
    return "\n".join(lines)


# --- distractors (bench only) ------------------------------------------------------------------

# A BENCH-ONLY DIRECT WRITE: Engram's API never inserts memories that way. Copies of the other
# agents' integrated memories (job_id set: no distractor of an earlier call) into one agent's stream.
_DISTRACT = """
    WITH own AS (SELECT DISTINCT md5(content) AS h FROM memories WHERE agent_id = %(agent_id)s),
    sources AS (
        SELECT DISTINCT ON (m.kind, md5(m.content)) m.kind, m.speaker, m.content, m.importance, m.occurred_at,
               a.name AS agent_name
        FROM memories m JOIN agents a ON a.id = m.agent_id
        WHERE a.namespace_id = %(namespace_id)s AND m.agent_id <> %(agent_id)s AND m.job_id IS NOT NULL
          AND NOT (a.name = ANY(%(excluded)s)) AND md5(m.content) NOT IN (SELECT h FROM own)
        ORDER BY m.kind, md5(m.content), m.id
    ),
    pool AS (SELECT row_number() OVER (ORDER BY md5(kind || content)) - 1 AS i, * FROM sources),
    size AS (SELECT count(*) AS n FROM pool)
    INSERT INTO memories (agent_id, session_id, session_name, generation, kind, speaker, content, importance,
                          evidence, job_id, occurred_at, created_at, last_seen_at)
    SELECT %(agent_id)s, %(session_id)s, %(session_name)s, 1, p.kind,
           CASE WHEN p.speaker = p.agent_name THEN %(agent)s ELSE p.speaker END, p.content, p.importance,
           ARRAY[g.n + 1]::bigint[], NULL, p.occurred_at, now(), now()
    FROM generate_series(0, %(count)s - 1) AS g(n) CROSS JOIN size JOIN pool p ON p.i = g.n %% greatest(size.n, 1)
    ORDER BY g.n"""


def add_distractors(dsn: str, http: httpx.Client, ns: str, question: Question, ds: DevSet, count: int) -> dict[str, Any]:
    """BENCH ONLY, a direct SQL write: ``count`` distractor memories for the question's agent, in a
    session ``<agent>-distractors`` made through the API (see the module docstring). ``ds`` must
    hold every conversation loaded in ``ns`` (to leave out those sharing the question's evidence
    sessions). Returns the seconds the insert took and how many distinct memories it cycled."""
    import psycopg

    session = f"{question.agent}{DISTRACTOR_SUFFIX}"
    _call(http, "POST", f"/v1/namespaces/{ns}/sessions", ok=(409,), json={"name": session})
    wanted = set(question.evidence_sessions)
    excluded = [c.agent for c in ds.conversations
                if c.agent != question.agent and wanted & {s.source.split("~")[0] for s in c.sessions}]
    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute("SELECT n.id, a.id, s.id FROM namespaces n JOIN agents a ON a.namespace_id = n.id "
                         "JOIN sessions s ON s.namespace_id = n.id WHERE n.name = %s AND a.name = %s AND s.name = %s",
                         (ns, question.agent, session)).fetchone()
        if row is None:
            raise RuntimeError(f"no agent {question.agent} or session {session} in namespace {ns}")
        namespace_id, agent_id, session_id = row
        t0 = time.perf_counter()
        with db.transaction():
            inserted = db.execute(_DISTRACT, {"agent_id": agent_id, "namespace_id": namespace_id, "session_id": session_id,
                                              "session_name": session, "agent": question.agent, "count": count,
                                              "excluded": excluded}).rowcount
        seconds = time.perf_counter() - t0
        distinct = db.execute("SELECT count(DISTINCT md5(content)) FROM memories WHERE agent_id = %s AND session_id = %s",
                              (agent_id, session_id)).fetchone()
    if inserted != count:
        raise RuntimeError(f"{question.agent}: {inserted} distractors inserted, {count} wanted (no other agents?)")
    return {"agent": question.agent, "inserted": inserted, "distinct": distinct[0] if distinct else None,
            "excluded_agents": excluded, "insert_s": round(seconds, 1)}


def distractor_subset(ds: DevSet, n: int) -> list[Question]:
    """``n`` asked held-out questions (tuning ones if none is held out), the categories in turn: the
    first of each category in rank order, then the second of each, and so on."""
    asked = [q for q in ds.questions if q.asked]
    half = "heldout" if any(q.half == "heldout" for q in asked) else "tune"
    mine = sorted((q for q in asked if q.half == half), key=lambda q: q.rank)
    turn = {q.id: sum(p.category == q.category for p in mine[:i]) for i, q in enumerate(mine)}
    return sorted(mine, key=lambda q: (turn[q.id], CATEGORIES.index(q.category)))[:n]


def with_distractors(http: httpx.Client, ns: str, ds: DevSet, dsn: str, count: int, questions: int,
                     before: dict[str, Found], log: Log = print) -> dict[str, Any]:
    """Add ``count`` distractors to the agents of a subset of questions, ask them again, compare."""
    import psycopg

    subset = distractor_subset(ds, questions)
    inserts = []
    for q in subset:
        inserts.append(add_distractors(dsn, http, ns, q, ds, count))
        log(f"{count:,} distractors for {q.agent} ({q.category}) in {inserts[-1]['insert_s']}s "
            f"({inserts[-1]['distinct']:,} distinct)")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("ANALYZE memories")
    after, latencies = ask(http, ns, subset)
    out = figures(subset, {"without": before, "with": after}, ratios=("with", "without"))
    out.update({"distractors_per_agent": count, "question_ids": [q.id for q in subset], "inserts": inserts,
                "insert_s": round(sum(i["insert_s"] for i in inserts), 1),
                "recall_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
                "per_question": [{"id": q.id, "category": q.category,
                                  **{f"{name}@{k}": round(recall_at(found[q.id], q.evidence, k), 3)
                                     for name, found in (("without", before), ("with", after)) for k in KS}}
                                 for q in subset]})
    return out


# --- the whole measure -------------------------------------------------------------------------


def measure(http: httpx.Client, ns: str, ds: DevSet, *, dsn: str | None = None, distractors: int = 0,
            distractor_questions: int = 6, concurrency: int = 8, integrate_after: bool = False,
            skip_load: bool = False, log: Log = print, before_distractors: Callable[[], None] | None = None
            ) -> dict[str, Any]:
    """Load and integrate ``ds`` into ``ns`` (unless ``skip_load``), ask its questions, score them
    against BM25; with ``distractors``, the same for a subset after adding that many distractors to
    each of its agents (``before_distractors`` runs first: the bench's latency part). A dict for
    bench/results.json."""
    loading = None if skip_load else load(http, ns, ds, concurrency=concurrency, integrate_after=integrate_after,
                                          log=log)
    asked = [q for q in ds.questions if q.asked]
    engram, latencies = ask(http, ns, asked)
    t0 = time.perf_counter()
    runs: dict[str, dict[str, Found]] = {"engram": engram}
    for name, as_reference in (("bm25", False), ("bm25_ref", True)):  # each ranked turn as a memory citing it
        runs[name] = {qid: [[turn] for turn in ranked]
                      for qid, ranked in bm25(ds, asked, as_recall_reference=as_reference).items()}
    bm25_s = time.perf_counter() - t0
    rep = report(ds, runs)
    rep.update({"dataset": {"path": str(ds.path), "conversations": len(ds.conversations),
                            "sessions": sum(len(c.sessions) for c in ds.conversations), "turns": ds.turns,
                            "questions": len(ds.questions)},
                "namespace": ns, "loading": loading, "bm25_s": round(bm25_s, 1),
                "recall_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
                "split": "per category, questions in sha256(id) order; even positions tune, odd heldout",
                "bm25": "bm25s lucene k1 1.2 b 0.75, lowercase, bm25s 'en' stopwords, over the question's own haystack; "
                        "bm25_ref: as bench/recall_reference.py (its en_plus stopwords, k1 1.5)"})
    if before_distractors is not None:
        before_distractors()
    if distractors:
        if dsn is None:
            raise ValueError("distractors are written straight into the database: give its URL")
        rep["distractors"] = with_distractors(http, ns, ds, dsn, distractors, distractor_questions, engram, log)
    return rep


def _print_distractors(d: dict[str, Any]) -> None:
    print(f"with {d['distractors_per_agent']:,} distractor memories per agent ({d['questions']} held-out questions, "
          f"inserted in {d['insert_s']}s in all): recall@10 {d['with']['recall@10']} vs {d['without']['recall@10']} "
          f"without (ratio {d['ratio@10']}), @5 {d['with']['recall@5']} vs {d['without']['recall@5']} "
          f"(ratio {d['ratio@5']}); recall p50 {d['recall_p50_ms']} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recall_dev", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    p.add_argument("key", nargs="?", default=None, help="admin key (Bearer), if the API asks for one")
    p.add_argument("--half", choices=("tune", "heldout", "both"), default="both")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions (balanced; see above)")
    p.add_argument("--distractors", type=int, default=0, metavar="N", help="distractor memories per agent of the subset")
    p.add_argument("--distractor-questions", type=int, default=6, metavar="K", help="size of that subset (default 6)")
    p.add_argument("--database-url", default=os.environ.get("ENGRAM_DATABASE_URL"),
                   help="for --distractors (default ENGRAM_DATABASE_URL)")
    p.add_argument("--namespace", default=None, help="default recall-dev-<unix time>")
    p.add_argument("--skip-load", action="store_true", help="the namespace is loaded and integrated already: only ask")
    p.add_argument("--integrate-after", action="store_true",
                   help="integrate once everything is loaded (default: each session as soon as its turns are in)")
    p.add_argument("--concurrency", type=int, default=8, help="conversations loaded side by side (default 8)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    try:
        ds = load_set()
    except DevSetMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    ds = select(ds, HALVES if args.half == "both" else (args.half,), args.limit)
    dsn = None
    if args.distractors:
        if not args.database_url:
            p.error("--distractors writes into the database: give --database-url or ENGRAM_DATABASE_URL")
        from shared.config import libpq

        dsn = libpq(args.database_url)
    ns = args.namespace or f"recall-dev-{int(time.time())}"
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    print(f"recall dev set {ds.path}: {len(ds.questions)} questions, {len(ds.conversations)} conversations, "
          f"{ds.turns} turns; namespace {ns}", flush=True)
    limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
    with httpx.Client(base_url=args.url, headers=headers, timeout=300, limits=limits) as http:
        rep = measure(http, ns, ds, dsn=dsn, distractors=args.distractors,
                      distractor_questions=args.distractor_questions, concurrency=args.concurrency,
                      integrate_after=args.integrate_after, skip_load=args.skip_load,
                      log=lambda s: print(f"  {s}", flush=True))
    print(table(rep))
    if "distractors" in rep:
        _print_distractors(rep["distractors"])
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
