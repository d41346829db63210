"""The BM25 references of the dev set's measure (see bench/recall_dev.py, **Scoring**): each
question's turns ranked by BM25 over the raw turns of its own haystack."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import bm25s

from bench.recall_dev_api import LIMIT
from bench.recall_dev_set import DevSet, Question
from bench.recall_reference import _tokens

# bm25s logs each index it builds (one per question here).
logging.getLogger("bm25s").setLevel(logging.WARNING)


def bm25(ds: DevSet, questions: Sequence[Question], *, as_recall_reference: bool = False
         ) -> dict[str, list[tuple[str, int]]]:
    """Per question id, the 10 best turns of its own haystack by BM25, best first (turns sharing no
    word with the question are not ranked; ties keep the haystack's order). bm25s, Lucene variant,
    k1 1.2, b 0.75, lowercase word tokens without bm25s's ``en`` stopwords (Lucene's 33); or, with
    ``as_recall_reference``, exactly as bench/recall_reference.py ranks: its tokens (``en_plus``
    stopwords, NLTK's 179) and bm25s's default k1 1.5."""

    def tokens(texts: list[str]) -> list[list[str]]:
        if as_recall_reference:
            return _tokens(texts)
        got = bm25s.tokenize(texts, lower=True, stopwords="en", return_ids=False, show_progress=False)
        return [[str(t) for t in doc] for doc in got]

    out: dict[str, list[tuple[str, int]]] = {}
    for cid in dict.fromkeys(q.conversation for q in questions):
        c = ds.conversation(cid)
        keys = [(s.name, n) for s in c.sessions for n in range(1, len(s.turns) + 1)]
        retriever = bm25s.BM25() if as_recall_reference else bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        retriever.index(tokens([text for s in c.sessions for _, text in s.turns]), show_progress=False)
        for q in questions:
            if q.conversation == cid:
                query = tokens([q.text])[0]
                scores = [float(x) for x in retriever.get_scores(query)] if query else [0.0] * len(keys)
                order = sorted((n for n in range(len(keys)) if scores[n] > 0), key=lambda n: (-scores[n], n))
                out[q.id] = [keys[n] for n in order[:LIMIT]]
    return out
