"""The `text` of a context: turns, memories and insights rendered for a prompt within a budget."""

from __future__ import annotations

from collections.abc import Sequence

from shared.memories.schemas import RecalledMemory
from shared.sessions.schemas import InsightRead
from shared.turns.schemas import TurnRead

# Shares of the budget; what a section does not use goes to the next ones.
_SHARES = (("memories", 0.4), ("insights", 0.2), ("turns", 0.4))


def _said(m: RecalledMemory) -> str:
    return f"{m.speaker}: {m.content}" if m.speaker else m.content


def _memory_line(m: RecalledMemory) -> str:
    return f"- [{m.occurred_at:%Y-%m-%d}, {m.session} #{','.join(map(str, m.evidence))}] {_said(m)}"


def _insight_line(i: InsightRead) -> str:
    return f"- ({i.importance}/10, turns {','.join(map(str, i.evidence))}) {i.content}"


def _turn_line(t: TurnRead) -> str:
    return f"#{t.seq} {t.speaker}: {t.content}"


def _fit(title: str, lines: Sequence[str], budget: int) -> list[str]:
    """The section's title and as many of its lines (in order) as fit in ``budget`` characters; a
    line too long for what is left is cut with an ellipsis when at least a few words fit."""
    if not lines or budget <= len(title) + 1:
        return []
    out, used = [title], len(title) + 1
    for line in lines:
        room = budget - used - 1
        if len(line) <= room:
            out.append(line)
            used += len(line) + 1
        else:
            if room >= 40:
                out.append(line[: room - 1] + "…")
            break
    return out if len(out) > 1 else []


def render(participant: str, turns: Sequence[TurnRead], memories: Sequence[RecalledMemory],
           insights: Sequence[InsightRead], max_chars: int) -> str:
    """At most ``max_chars`` characters: recalled memories (best first), latest insights, then the
    latest turns; when the turns do not all fit, the newest are kept."""
    header = f"Context for {participant}."
    if max_chars <= len(header):
        return header[:max_chars]
    left = max_chars - len(header) - 1
    sections: dict[str, list[str]] = {}
    lines = {
        # A reflection that only repeats an observation says nothing more: shown once.
        "memories": [_memory_line(m) for i, m in enumerate(memories)
                     if _said(m) not in {_said(n) for n in memories[:i]}],
        "insights": [_insight_line(i) for i in insights],
        "turns": [_turn_line(t) for t in reversed(turns)],  # newest first, so the newest fit
    }
    titles = {"memories": "\nWhat you remember:", "insights": "\nYour insights:", "turns": "\nLatest turns:"}
    for i, (name, share) in enumerate(_SHARES):
        later = sum(s for _, s in _SHARES[i + 1:])
        budget = left if i == len(_SHARES) - 1 else int(left * share / (share + later))
        sections[name] = _fit(titles[name], lines[name], budget)
        left -= sum(len(x) + 1 for x in sections[name])
    if sections["turns"]:
        sections["turns"] = [sections["turns"][0], *reversed(sections["turns"][1:])]  # oldest first to read
    text = "\n".join([header, *sections["memories"], *sections["insights"], *sections["turns"]])
    return text[:max_chars]
