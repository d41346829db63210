"""Integrators turn a participant's turns into insights; ``load_integrator`` picks one from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from shared.integrators.base import ChatTurn, InsightDraft, Integrator, IntegratorError, Reflection
from shared.kit.metrics import INTEGRATOR_SECONDS
from shared.plugins import load_factory

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "ChatTurn",
    "InsightDraft",
    "Integrator",
    "IntegratorError",
    "Reflection",
    "TimedIntegrator",
    "load_integrator",
]

_OPTIONS = "`builtin`, `openai`, or a dotted path to a factory such as `package.module:factory`"


def load_integrator(settings: Settings) -> Integrator:
    """The integrator named by ``settings.integrator``; ValueError if it cannot be loaded."""
    choice = (settings.integrator or "").strip()
    if choice == "builtin":
        from shared.integrators.builtin import BuiltinIntegrator

        return BuiltinIntegrator()
    if choice == "openai":
        from shared.integrators.openai import OpenAIIntegrator

        return OpenAIIntegrator(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )
    return _from_dotted_path(choice, settings)


def _from_dotted_path(path: str, settings: Settings) -> Integrator:
    integrator = load_factory(path, "ENGRAM_INTEGRATOR", _OPTIONS)(settings)
    # Check the shape early: a wrong factory should fail at startup, not in the first job.
    if not callable(getattr(integrator, "reflect", None)) or not isinstance(getattr(integrator, "name", None), str):
        raise ValueError(f"ENGRAM_INTEGRATOR={path!r}: it returned {type(integrator).__name__}, which has no `name` "
                         f"and `reflect`. Use {_OPTIONS}.")
    return cast(Integrator, integrator)


class TimedIntegrator:
    """An integrator whose calls are timed in INTEGRATOR_SECONDS."""

    def __init__(self, inner: Integrator) -> None:
        self.inner = inner
        self.name = inner.name

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        with INTEGRATOR_SECONDS.time():
            return self.inner.reflect(reflection)
