"""Summarize py-spy raw (collapsed) profiles written by `python -m bench --profile`.

    python -m bench.profile_summary bench/profiles/submit-api.txt [--top 25] [--grep engram]

Prints, for the samples of the file (py-spy counts only threads that are not idle, so a sample
is roughly CPU time): the functions with the most inclusive samples (on the stack), and the
functions with the most self samples (the leaf, where the time is spent).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_PROC = re.compile(r'^process \d+:"(?P<cmd>[^"]*)"$')
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(: (?P<name>.*))?$")


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)" for inclusive grouping
    m = re.match(r"^(?P<f>.*) \((?P<file>[^:]*):\d+\)$", frame)
    if not m:
        return frame
    file = m.group("file")
    for prefix in ("site-packages/", "lib/python3.11/"):
        if prefix in file:
            file = file.split(prefix, 1)[1]
    return f"{m.group('f')} ({file})"


def summarize(path: Path, top: int = 25, grep: str | None = None) -> str:
    stacks = load(path)
    total = sum(c for _, c in stacks)
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    by_process: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for frames, count in stacks:
        code = []
        for f in frames:
            m = _PROC.match(f)
            if m:
                by_process[f.split(":", 1)[0]] += count
                continue
            m = _THREAD.match(f)
            if m:
                by_thread[m.group("name") or "thread"] += count
                continue
            code.append(short(f))
        if not code:
            continue
        self_[code[-1]] += count
        for f in set(code):
            inclusive[f] += count
    out = [f"{path.name}: {total} samples"]
    if len(by_process) > 1:
        out.append("  by process: " + ", ".join(f"{p} {100 * c / total:.0f}%" for p, c in by_process.most_common()))
    out.append("  by thread: " + ", ".join(f"{t} {100 * c / total:.0f}%" for t, c in by_thread.most_common(5)))
    out.append(f"  inclusive (top {top}{', matching ' + grep if grep else ''}):")
    shown = 0
    for f, c in inclusive.most_common():
        if grep and grep not in f:
            continue
        out.append(f"    {100 * c / total:5.1f}%  {f}")
        shown += 1
        if shown >= top:
            break
    out.append(f"  self (top {top}):")
    for f, c in self_.most_common(top):
        out.append(f"    {100 * c / total:5.1f}%  {f}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--grep", default=None, help="only inclusive frames containing this text, e.g. '(api/' or 'shared/'")
    args = p.parse_args()
    for f in args.files:
        print(summarize(f, args.top, args.grep))
        print()


if __name__ == "__main__":
    main()
