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
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.recall_dev_api import Found, Log, ask, load
from bench.recall_dev_bm25 import bm25
from bench.recall_dev_distractors import with_distractors
from bench.recall_dev_score import report, table
from bench.recall_dev_set import HALVES, DevSet, DevSetMissing, load_set, select


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
