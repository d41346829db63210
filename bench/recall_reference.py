"""The reference a memory has to beat: a plain BM25 ranking of the raw turns an agent can see.

For each question, the turns visible to the asking agent (every session it is bound to, minus
the private turns of others) are ranked with BM25 (bm25s, Lucene variant, lowercase word
tokens, the NLTK English stopwords, no stemming), each turn indexed by its content. The figure
reported is evidence recall@k: the share of a question's evidence turns found in its top k,
averaged over questions, overall and per kind.

    python -m bench.recall_reference
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import bm25s

from bench.recall_set import KINDS, RecallSet, build, visible

KS = (5, 10)


def evidence_recall(ranked: Sequence[tuple[str, int]], evidence: Sequence[tuple[str, int]], k: int) -> float:
    """The share of `evidence` among the first `k` items of `ranked`."""
    wanted = set(evidence)
    if not wanted:
        raise ValueError("a question without evidence has no recall")
    return len(wanted & set(ranked[:k])) / len(wanted)


def _tokens(texts: list[str]) -> list[list[str]]:
    tokenized = bm25s.tokenize(texts, lower=True, stopwords="en_plus", return_ids=False, show_progress=False)
    return [[str(token) for token in doc] for doc in tokenized]


def bm25_rankings(rs: RecallSet, limit: int = 10) -> dict[int, list[tuple[str, int]]]:
    """For each question (by index), the `limit` best turns its agent can see, best first.

    Turns that share no word with the question are not ranked; ties keep the turns' order.
    """
    by_agent: dict[str, list[int]] = defaultdict(list)
    for i, question in enumerate(rs.questions):
        by_agent[question.agent].append(i)
    rankings: dict[int, list[tuple[str, int]]] = {}
    for agent, indexes in sorted(by_agent.items()):
        keys: list[tuple[str, int]] = []
        texts: list[str] = []
        for conversation in rs.conversations:
            for seq, turn in enumerate(conversation.turns, start=1):
                if visible(turn, agent, conversation):
                    keys.append((conversation.session, seq))
                    texts.append(turn.content)
        retriever = bm25s.BM25()
        retriever.index(_tokens(texts), show_progress=False)
        queries = _tokens([rs.questions[i].text for i in indexes])
        for i, query in zip(indexes, queries, strict=True):
            scores = [float(s) for s in retriever.get_scores(query)] if query else [0.0] * len(keys)
            order = sorted((n for n in range(len(keys)) if scores[n] > 0), key=lambda n: (-scores[n], n))
            rankings[i] = [keys[n] for n in order[:limit]]
    return rankings


def report(rs: RecallSet, rankings: dict[int, list[tuple[str, int]]]) -> dict[str, Any]:
    """Evidence recall@5 and @10 of `rankings`, over all questions and per kind."""

    def figures(indexes: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"questions": len(indexes)}
        for k in KS:
            scores = [evidence_recall(rankings.get(i, []), rs.questions[i].evidence, k) for i in indexes]
            out[f"recall@{k}"] = round(sum(scores) / len(scores), 3) if scores else None
        return out

    everything = list(range(len(rs.questions)))
    result = figures(everything)
    result["by_kind"] = {kind: figures([i for i in everything if rs.questions[i].kind == kind]) for kind in KINDS}
    return result


if __name__ == "__main__":
    recall_set = build()
    figures = report(recall_set, bm25_rankings(recall_set, limit=max(KS)))
    turns = sum(len(c.turns) for c in recall_set.conversations)
    print(f"BM25 over raw turns: {len(recall_set.conversations)} sessions, {turns} turns, {figures['questions']} questions")
    print(json.dumps(figures, indent=2))
