"""Recall with an embedder, on a real pgvector (DESIGN.md section 2, Recall; the embedders).

The run's PostgreSQL is used when it has pgvector; otherwise (the machine's PostgreSQL 15 has
none) these tests start the embedded PostgreSQL, which bundles it: the vector path is tested in
every run. Nothing stands in for PostgreSQL."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from shared.memories.service import recall_mode
from tests.conftest import ADMIN_KEY, make_settings
from tests.integration import concept_embedder, sql
from tests.integration.conftest import INTEGRATION_REDIS_DB, World

WORKER = "test-worker"


def _has_pgvector(url: str) -> bool:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        return conn.execute("SELECT to_regclass('memory_embeddings') IS NOT NULL").fetchone() == (True,)


@pytest.fixture(scope="module")
def pgvector_url(services: Any) -> Iterator[str]:
    if _has_pgvector(services.database_url):
        yield services.database_url
        return
    from cli.main import run_migrations
    from shared.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="engram-pgvector-")))
    try:
        url = pg.start()
    except Exception as exc:  # noqa: BLE001 - say how to get it, never skip
        pytest.fail(f"the vector tests need pgvector: the embedded PostgreSQL (pgserver wheel) did not start ({exc}). "
                    "Run `make install`.", pytrace=False)
    try:
        run_migrations(url)
        assert _has_pgvector(url), "the embedded PostgreSQL should bundle pgvector"
        yield url
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def vworld(services: Any, pgvector_url: str) -> Iterator[tuple[World, Any]]:
    from api.main import create_app

    settings = make_settings(services, INTEGRATION_REDIS_DB, database_url=pgvector_url,
                             embedder=concept_embedder.PATH, embedding_dimensions=concept_embedder.DIMENSIONS)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        ns = f"vec-{secrets.token_hex(4)}"
        assert http.put(f"/v1/namespaces/{ns}", json={}).status_code == 201
        yield World(http, ns), settings


def _integrate(world: World, settings: Any, session: str) -> None:
    job_id = world.post(f"/sessions/{session}/integrate").json()["id"]
    assert run_job(job_id, settings, WORKER) == "succeeded"


def _remembering(world: World, settings: Any, *said: str) -> str:
    """A new agent that heard the user say ``said`` in a session, integrated."""
    agent = world.agent(f"a{secrets.token_hex(3)}")
    s = world.session()
    world.bind(s, agent)
    world.turns(s, *[{"speaker": "user", "content": line} for line in said])
    _integrate(world, settings, s)
    return agent


def _embeddings(settings: Any, agent: str) -> int:
    with unit_of_work(settings) as db:
        return int(sql.value(
            db, "SELECT count(*) FROM memory_embeddings e JOIN agents a ON a.id = e.agent_id WHERE a.name = %(a)s",
            {"a": agent}))


def test_embeddings_are_computed_by_workers_in_batches_never_on_append(vworld: tuple[World, Any]) -> None:
    world, settings = vworld
    agent = world.agent(f"a{secrets.token_hex(3)}")
    s = world.session()
    world.bind(s, agent)
    concept_embedder.calls.clear()
    world.turns(s, *[{"speaker": "user", "content": f"Fact number {i} about the billing service."} for i in range(5)])
    assert concept_embedder.calls == [] and _embeddings(settings, agent) == 0  # the append embeds nothing
    _integrate(world, settings, s)
    memories = world.get(f"/agents/{agent}/memories").json()["items"]
    assert _embeddings(settings, agent) == len(memories) >= 5
    # One batch for the whole integration: every candidate memory, before the near-duplicate check.
    assert len(concept_embedder.calls) == 1 and concept_embedder.calls[0] >= len(memories)


def test_vector_recall_finds_a_paraphrase_full_text_misses(vworld: tuple[World, Any]) -> None:
    world, settings = vworld
    agent = _remembering(world, settings, "Grace maintains the billing service.", "The weather was lovely on Saturday.")
    hybrid = world.post(f"/agents/{agent}/recall", json={"query": "Who looks after invoicing?", "kinds": ["observation"]})
    assert hybrid.status_code == 200
    assert hybrid.json()["items"][0]["content"] == "Grace maintains the billing service."
    # The same question by full-text alone finds nothing: no word in common.
    plain = make_settings_like(settings, embedder="none")
    with unit_of_work(plain) as db:
        from shared.memories.schemas import RecallRequest
        from shared.memories.service import ranked

        agent_id = sql.value(db, "SELECT id FROM agents WHERE name = %(a)s", {"a": agent})
        rows = ranked(db, sql.agent(db, agent_id), RecallRequest(query="Who looks after invoicing?"), plain, limit=5)
    assert rows == []


def test_recall_explain_in_hybrid_mode_gives_each_items_place_in_both_rankings(vworld: tuple[World, Any]) -> None:
    world, settings = vworld
    agent = _remembering(world, settings, "Grace maintains the billing service.", "The weather was lovely on Saturday.",
                         "Billing sends the invoices on Monday.")
    r = world.post(f"/agents/{agent}/recall", json={"query": "Who maintains billing?", "explain": True,
                                                     "kinds": ["observation"]})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["content"] == "Grace maintains the billing service."
    k = settings.recall_rrf_k
    for item in items:
        full_text, vector = item["explain"]["full_text"], item["explain"]["vector"]
        assert vector is not None and -1 <= vector["score"] <= 1  # every memory has a vector: cosine similarity
        fused = settings.recall_weight_vectors / (k + vector["rank"]) + (1 / (k + full_text["rank"]) if full_text else 0)
        assert abs(item["score"] - fused) < 1e-6  # the reciprocal rank fusion of the two
    weather = [i for i in items if "weather" in i["content"]]
    assert all(i["explain"]["full_text"] is None for i in weather)  # no word of the query: not a BM25 candidate


def test_recall_mode_is_reported(vworld: tuple[World, Any]) -> None:
    _, settings = vworld
    assert recall_mode(settings) == "hybrid"
    assert recall_mode(make_settings_like(settings, embedder="none")) == "full-text"
    broken = recall_mode(make_settings_like(settings, embedder="no_such_module:factory"))
    assert broken.startswith("full-text (embedder unusable: ENGRAM_EMBEDDER='no_such_module:factory'")


def test_without_pgvector_recall_is_full_text_and_says_so(vworld: tuple[World, Any], pgvector_url: str) -> None:
    _world, settings = vworld
    # A database migrated where pgvector is missing has no embeddings table: make one like it.
    name = f"novec_{secrets.token_hex(3)}"
    admin = pgvector_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pgvector_url.replace(pgvector_url.split("?")[0].rsplit("/", 1)[1], name, 1)
    from cli.main import run_migrations

    run_migrations(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("DROP TABLE memory_embeddings")
    novec = make_settings_like(settings, database_url=url)
    assert recall_mode(novec) == "full-text (pgvector missing; ENGRAM_EMBEDDER unused)"


def make_settings_like(settings: Any, **changes: Any) -> Any:
    return settings.model_copy(update=changes)
