"""Printing the figures, and writing bench/results.json, bench/report.md and the plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.phases import PHASES
from bench.phases.common import Figure


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                                cwd=Path(__file__).resolve().parents[1], timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": mem_gb, "python": platform.python_version(),
            "kernel": platform.release(), "commit": commit}


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


def verdict(f: Figure) -> str:
    return "info" if f.passed is None else ("PASS" if f.passed else "FAIL")


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "reference", "ratio", "target", "result")]
    for f in figures:
        rows.append((f.title, f"{_fmt(f.value)} {f.unit}", f"{_fmt(f.reference)} {f.unit}" if f.reference is not None else "-",
                     _fmt(f.ratio), f.target or "-", verdict(f)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[0] = min(widths[0], 78)
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(c[: widths[i]].ljust(widths[i]) if i == 0 else
                             c.rjust(widths[i]) if i in (1, 2, 3) else c.ljust(widths[i]) for i, c in enumerate(r)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(path: Path, run: dict[str, Any], figures: list[Figure]) -> None:
    path.write_text(json.dumps({**run, "figures": [f.to_json() for f in figures]}, indent=2, default=str) + "\n")


def plot(path: Path, figures: list[Figure]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig_h = next((f for f in figures if f.key == "history_ratio"), None)
    if fig_h is None:
        return False
    sweep = fig_h.details["sweep_ms"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for kind, label, marker in (("fresh", "fresh session", "o"),
                                ("history", f"after {fig_h.details['history_turns']:,} integrated turns", "s")):
        pts = sorted((int(n), v) for n, v in sweep[kind].items())
        xs = [n for n, _ in pts]
        med = [sorted(v)[len(v) // 2] / 1000 for _, v in pts]
        lo = [m - min(v) / 1000 for m, (_, v) in zip(med, pts, strict=True)]
        hi = [max(v) / 1000 - m for m, (_, v) in zip(med, pts, strict=True)]
        ax.errorbar(xs, med, yerr=[lo, hi], marker=marker, capsize=3, label=label)
    ax.set_xlabel("new turns integrated (1 participant)")
    ax.set_ylabel("integration time, POST → finished (s)")
    ax.set_title("Engram integration time against new turns (median, min–max)")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


_CPU_NAMES = {"other processes (not the bench's)": "other processes", "bench client": "load client"}


def markdown(run: dict[str, Any], figures: list[Figure], plot_name: str | None) -> str:
    m = run["machine"]
    lines = [
        "# Engram benchmark report",
        "",
        f"Run `{run['mode']}` on {run['finished_at']} — {m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GB, "
        f"Python {m['python']}, commit `{m['commit']}`. PostgreSQL {run['services']['postgres_version']} "
        f"({run['services']['postgres']}), Redis {run['services']['redis']}. Took {run['duration_s']:.0f} s. "
        "How to read it: `BENCHMARKS.md`." + (f" Phases run: {', '.join(run['phases'])}." if len(run["phases"]) < len(PHASES)
                                              else "")
        + (f" The machine was busy before the start ({run['background_cpu_pct_of_core_at_start']:.0f}% of a core): "
           "figures are noisy." if run.get("background_cpu_pct_of_core_at_start", 0) > 25 else ""),
        "",
        "| figure | value | reference | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for f in figures:
        ref = f"{_fmt(f.reference)} {f.unit} ({f.reference_label})" if f.reference is not None else "-"
        lines.append(f"| {f.title} | {_fmt(f.value)} {f.unit} | {ref} | {_fmt(f.ratio)} | "
                     f"{f.target or '-'} | **{verdict(f)}** |" if f.passed is not None else
                     f"| {f.title} | {_fmt(f.value)} {f.unit} | {ref} | {_fmt(f.ratio)} | - | info |")
    lines += ["", "Notes:", ""]
    for f in figures:
        parts = [f.note] if f.note else []
        cpu = f.details.get("cpu_pct_of_core")
        if cpu:
            parts.append("CPU in % of one core: " + ", ".join(
                f"{_CPU_NAMES.get(k, k)} {v:.0f}" for k, v in cpu.items() if k != "machine (all cores)"))
        if parts:
            lines.append(f"- **{f.key}**: " + "; ".join(parts))
    lines += ["", "All details, per round and per sample, are in `results.json`."]
    if plot_name:
        lines += ["", f"![integration time against new turns]({plot_name})", ""]
    return "\n".join(lines) + "\n"
