"""Scoring the dev set's runs (see bench/recall_dev.py, **Scoring**): evidence recall@k per
question, its means overall, per half and per category, the ratios between runs, and the text table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.recall_dev_api import Found
from bench.recall_dev_set import CATEGORIES, HALVES, DevSet, Question
from bench.recall_reference import KS


def recall_at(found: Found, evidence: Sequence[tuple[str, int]], k: int) -> float:
    """The share of ``evidence`` among the turns the first ``k`` memories cite."""
    cited = {e for memory in found[:k] for e in memory}
    return len(set(evidence) & cited) / len(set(evidence))


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
