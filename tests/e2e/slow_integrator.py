"""The built-in integrator, slowed down for agents whose description says "slow": it gives an
end-to-end test time to kill a worker in the middle of an integration."""

from __future__ import annotations

import time

from shared.integrators import InsightDraft, Reflection
from shared.integrators.builtin import BuiltinIntegrator


class SlowWhenAsked(BuiltinIntegrator):
    name = "slow-when-asked"

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        if "slow" in reflection.agent_description:
            time.sleep(2.0)
        return super().reflect(reflection)


def factory(settings) -> SlowWhenAsked:
    return SlowWhenAsked()
