"""A deterministic embedder for the tests: each word maps to a concept (a few synonyms share
one), each concept to a fixed dimension; a text's vector is its normalized concept counts. It
stands in for a real model the way a model is used: similar meaning, nearby vectors."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

DIMENSIONS = 64
_CONCEPTS = {
    "invoice": "billing", "invoices": "billing", "invoicing": "billing", "billing": "billing", "bill": "billing",
    "maintains": "owns", "maintain": "owns", "owns": "owns", "looks": "owns", "after": "owns", "responsible": "owns",
    "grace": "grace",
}
_STOP = {"the", "a", "an", "is", "and", "i", "who", "what", "of", "for", "in", "to", "service"}
calls: list[int] = []  # batch sizes asked for, to check embeddings are computed in batches


def _dimension(word: str) -> int:
    concept = _CONCEPTS.get(word, word)
    return int.from_bytes(hashlib.blake2b(concept.encode(), digest_size=4).digest(), "big") % DIMENSIONS


class ConceptEmbedder:
    name = "concept"
    dimensions = DIMENSIONS

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        calls.append(len(texts))
        out = []
        for text in texts:
            v = [0.0] * DIMENSIONS
            for word in re.findall(r"[a-z]+", text.lower()):
                if word not in _STOP:
                    v[_dimension(word)] += 1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out


def factory(settings: Any) -> ConceptEmbedder:
    return ConceptEmbedder()


PATH = "tests.integration.concept_embedder:factory"
