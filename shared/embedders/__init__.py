"""Embedders turn memories and recall queries into vectors; ``load_embedder`` picks one from settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from shared.embedders.base import Embedder, EmbedderError
from shared.kit.metrics import EMBEDDER_SECONDS
from shared.plugins import load_factory

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["Embedder", "EmbedderError", "TimedEmbedder", "load_embedder"]

_OPTIONS = "`none` (full-text recall only), `openai`, or a dotted path to a factory such as `package.module:factory`"


def load_embedder(settings: Settings) -> Embedder | None:
    """The embedder named by ``settings.embedder``; None for `none`; ValueError if it cannot be loaded."""
    choice = (settings.embedder or "").strip()
    if choice in ("", "none"):
        return None
    if choice == "openai":
        from shared.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            base_url=settings.embedding_base_url or settings.llm_base_url, model=settings.embedding_model,
            dimensions=settings.embedding_dimensions, api_key=settings.embedding_api_key or settings.llm_api_key,
            timeout=settings.llm_timeout_seconds, max_retries=settings.llm_max_retries,
            batch_size=settings.embedding_batch_size)
    # As shared/integrators/__init__.py checks and times an integrator: the two packages are independent
    # of each other (pyproject's import contract), and each checks its own plug-in's shape.
    embedder = load_factory(choice, "ENGRAM_EMBEDDER", _OPTIONS)(settings)
    if not callable(getattr(embedder, "embed", None)) or not isinstance(getattr(embedder, "dimensions", None), int):
        raise ValueError(f"ENGRAM_EMBEDDER={choice!r}: it returned {type(embedder).__name__}, which has no `embed` "
                         f"and `dimensions`. Use {_OPTIONS}.")
    return cast(Embedder, embedder)


class TimedEmbedder:
    """An embedder whose calls are timed in EMBEDDER_SECONDS."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dimensions = inner.name, inner.dimensions

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with EMBEDDER_SECONDS.time():
            return self.inner.embed(texts)
