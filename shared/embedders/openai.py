"""Embeddings from any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint."""

from __future__ import annotations

import math
from collections.abc import Sequence

import httpx
from pydantic import SecretStr

from shared.embedders.base import EmbedderError
from shared.endpoints import EndpointError, JsonEndpoint, excerpt


class OpenAIEmbedder:
    name = "openai"

    def __init__(self, base_url: str, model: str, dimensions: int, api_key: str | SecretStr | None = None,
                 timeout: float = 60.0, max_retries: int = 4, batch_size: int = 64, client: httpx.Client | None = None,
                 *, backoff_base: float = 0.5) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.endpoint = JsonEndpoint(self.url, "embeddings", api_key, timeout, max_retries, client,
                                     backoff_base=backoff_base)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(url={self.url!r}, model={self.model!r}, dimensions={self.dimensions})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, asked for in batches of ``batch_size``."""
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out += self._batch(list(texts[start:start + self.batch_size]))
        return out

    def _batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = self.endpoint.post({"model": self.model, "input": texts, "encoding_format": "float"})
        except EndpointError as exc:
            raise EmbedderError(str(exc), retryable=exc.retryable) from None
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = [[float(x) for x in d["embedding"]] for d in data]
        except (ValueError, KeyError, TypeError):
            raise EmbedderError(f"embeddings endpoint {self.url} did not answer embeddings: "
                                f"{excerpt(response.text)}") from None
        if len(vectors) != len(texts):
            raise EmbedderError(f"embeddings endpoint {self.url} answered {len(vectors)} vectors for {len(texts)} texts")
        for v in vectors:
            if len(v) != self.dimensions or not all(math.isfinite(x) for x in v):
                raise EmbedderError(f"embeddings endpoint {self.url} answered a vector of {len(v)} dimensions "
                                    f"(ENGRAM_EMBEDDING_DIMENSIONS={self.dimensions}) or with non-finite values")
        return vectors
