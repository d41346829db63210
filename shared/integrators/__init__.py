"""Integrators turn a participant's turns into insights; ``load_integrator`` picks one from settings."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shared.integrators.base import ChatTurn, InsightDraft, Integrator, IntegratorError, Reflection

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "ChatTurn",
    "InsightDraft",
    "Integrator",
    "IntegratorError",
    "Reflection",
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
    def invalid(why: str) -> ValueError:
        return ValueError(f"ENGRAM_INTEGRATOR={path!r}: {why}. Use {_OPTIONS}.")

    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr or not all(p.isidentifier() for p in [*module_name.split("."), *attr.split(".")]):
        raise invalid("not a known integrator nor a dotted path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise invalid(f"cannot import module {module_name!r} ({exc})") from exc

    factory: object = module
    for part in attr.split("."):  # `module:Class.create` style attributes work too
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise invalid(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise invalid(f"{attr!r} in {module_name!r} is not callable")

    integrator = factory(settings)
    # Check the shape early: a wrong factory should fail at startup, not in the first job.
    if not callable(getattr(integrator, "reflect", None)) or not isinstance(getattr(integrator, "name", None), str):
        raise invalid(f"{attr!r} returned {type(integrator).__name__}, which has no `name` and `reflect`")
    return integrator  # type: ignore[no-any-return]
