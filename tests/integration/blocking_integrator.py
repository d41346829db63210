"""An integrator that blocks inside its first reflection until the test releases it."""

from __future__ import annotations

import threading

from shared.integrators import InsightDraft, Reflection

entered = threading.Event()
release = threading.Event()
calls: list[str] = []


def reset() -> None:
    entered.clear()
    release.clear()
    calls.clear()


class Blocking:
    name = "blocking"

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        calls.append(reflection.agent)
        entered.set()
        release.wait(30)
        return [InsightDraft(content=f"{reflection.agent} saw {len(reflection.turns)} turns", importance=5,
                             evidence=[reflection.turns[0].seq])]


def factory(settings) -> Blocking:
    return Blocking()
