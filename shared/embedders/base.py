"""The embedder interface: texts in, one vector per text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


# The twin of IntegratorError (shared/integrators/base.py), kept apart: the two packages import nothing
# of each other, and a worker tells an embedder's failure from an integrator's by its type.
class EmbedderError(Exception):
    """The embedder could not embed. ``retryable`` says if a later run may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    name: str
    dimensions: int  # the length of every vector it returns

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...
