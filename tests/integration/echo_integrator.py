"""A deterministic integrator for the integrate and truncate semantics tests.

It drafts one insight per turn, whose content is the turn's content, so every test can say
exactly which insights and memories an integration must produce. It records which turns each
agent was given, and can hold inside a reflection until the test lets it go, to place other
writes (appends, truncates) while a run is between its claim and its commits.
"""

from __future__ import annotations

import threading

from shared.config import Settings
from shared.integrators import InsightDraft, Reflection

PATH = "tests.integration.echo_integrator:factory"

given: list[tuple[str, list[int]]] = []  # (agent, seqs of the turns it was given), in call order
hold = threading.Event()  # set: the next reflections wait for `release`
entered = threading.Event()
release = threading.Event()


def reset() -> None:
    given.clear()
    hold.clear()
    entered.clear()
    release.clear()


def importance(content: str) -> int:
    """A deterministic importance in 1..10, so tests can check it is stored as drafted."""
    return len(content) % 10 + 1


class Echo:
    name = "echo"

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        given.append((reflection.agent, [t.seq for t in reflection.turns]))
        if hold.is_set():
            entered.set()
            release.wait(30)
        return [InsightDraft(content=t.content, importance=importance(t.content), evidence=[t.seq])
                for t in reflection.turns]


def factory(settings: Settings) -> Echo:
    return Echo()
