"""DESIGN.md section 2, Recall and Forgetting: the BM25 statistics of an agent's memories (document
frequencies, corpus size and length, each memory's length) are kept by triggers in the transaction
that writes or deletes memories, whatever the path. After each step, they must equal a count made
from the memories themselves."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from shared.config import libpq
from shared.jobs.runner import run_job
from shared.kit.db import unit_of_work
from shared.sessions import service as sessions
from tests.integration import sql
from tests.integration.conftest import World

WORKER = "test-worker"

TURNS = [
    {"speaker": "grace", "content": "I moved to Lisbon for the billing job; Lisbon is lovely."},
    {"speaker": "omar", "content": "The printer is out of toner, and the zanzibar trip is booked."},
    {"speaker": "lena", "content": "We deploy billing on Thursday, and Grace reviews the billing deploy."},
]


def _integrate(world: World, settings: Any, session: str) -> None:
    job_id = world.post(f"/sessions/{session}/integrate").json()["id"]
    assert run_job(job_id, settings, WORKER) == "succeeded"


def _agent_id(world: World, settings: Any, agent: str = "ada") -> int:
    with unit_of_work(settings) as db:
        return int(sql.value(
            db, "SELECT a.id FROM agents a JOIN namespaces n ON n.id = a.namespace_id WHERE n.name = %(ns)s AND a.name = %(a)s",
            {"ns": world.ns, "a": agent}))


def _kept(settings: Any, agent_id: int) -> tuple[tuple[int, int] | None, dict[str, int]]:
    """The statistics as the triggers keep them: (docs, total length) and df by lexeme."""
    with unit_of_work(settings) as db:
        corpus = sql.row(db, "SELECT docs, total_length FROM memory_corpus WHERE agent_id = %(a)s", {"a": agent_id})
        rows = sql.rows(db, "SELECT lexeme, df FROM memory_terms WHERE agent_id = %(a)s", {"a": agent_id})
    return (None if corpus is None else (int(corpus[0]), int(corpus[1]))), {str(k): int(v) for k, v in rows}


def _counted(settings: Any, agent_id: int) -> tuple[tuple[int, int], dict[str, int]]:
    """The statistics counted from the agent's memories now, from their text."""
    with unit_of_work(settings) as db:
        rows = sql.rows(db, """
            SELECT m.id, w.lexeme, coalesce(array_length(w.positions, 1), 1)
            FROM memories m, unnest(to_tsvector('english', m.content)) w WHERE m.agent_id = %(a)s""",
            {"a": agent_id})
        docs = int(sql.value(db, "SELECT count(*) FROM memories WHERE agent_id = %(a)s", {"a": agent_id}))
    terms: dict[str, int] = {}
    for _, lexeme, _tf in rows:
        terms[lexeme] = terms.get(lexeme, 0) + 1
    return (docs, sum(int(tf) for _, _, tf in rows)), terms


def _assert_statistics_follow(settings: Any, agent_id: int) -> dict[str, int]:
    corpus, kept = _kept(settings, agent_id)
    expected_corpus, expected_terms = _counted(settings, agent_id)
    assert (corpus or (0, 0)) == expected_corpus
    assert kept == expected_terms  # no lexeme left at 0 or below: a df is never negative
    with unit_of_work(settings) as db:
        assert sql.value(
            db, "SELECT count(*) FROM memories WHERE agent_id = %(a)s AND doc_length <> memory_doc_length(tsv)",
            {"a": agent_id}) == 0
    return kept


def _session_with_memories(world: World, settings: Any) -> tuple[str, int]:
    name = world.session()
    world.bind(name, world.agent("ada"))
    assert world.turns(name, *TURNS).status_code == 201
    _integrate(world, settings, name)
    return name, _agent_id(world, settings)


def test_bm25_statistics_follow_integration(world: World, settings: Any) -> None:
    name, agent_id = _session_with_memories(world, settings)
    terms = _assert_statistics_follow(settings, agent_id)
    assert terms["lisbon"] >= 1 and terms["bill"] >= 2
    world.turns(name, {"speaker": "grace", "content": "Lisbon again: the billing team meets in Lisbon."})
    _integrate(world, settings, name)
    assert _assert_statistics_follow(settings, agent_id)["lisbon"] > terms["lisbon"]


def test_bm25_statistics_follow_forgetting(world: World, settings: Any) -> None:
    _, agent_id = _session_with_memories(world, settings)
    before = _assert_statistics_follow(settings, agent_id)
    citing = [m for m in world.get("/agents/ada/memories").json()["items"] if "zanzibar" in m["content"].lower()]
    assert citing and before["zanzibar"] == len(citing)
    for memory in citing:
        assert world.http.delete(f"{world.base}/agents/ada/memories/{memory['id']}").status_code == 204
    after = _assert_statistics_follow(settings, agent_id)
    assert "zanzibar" not in after  # its df fell to 0: the row is gone


def test_bm25_statistics_follow_redaction(world: World, settings: Any) -> None:
    name, agent_id = _session_with_memories(world, settings)
    corpus, _ = _kept(settings, agent_id)
    r = world.http.delete(f"{world.base}/sessions/{name}/turns/2")
    assert r.status_code == 200 and r.json()["memories_deleted"] >= 1
    after = _assert_statistics_follow(settings, agent_id)
    assert "zanzibar" not in after
    assert corpus is not None and _kept(settings, agent_id)[0] == (corpus[0] - r.json()["memories_deleted"],
                                                                  _counted(settings, agent_id)[0][1])


def test_bm25_statistics_follow_a_change_of_a_memorys_text(world: World, settings: Any) -> None:
    # No endpoint edits a memory's text today; the trigger is there for whatever will (a memory
    # indexed with what integration derived from its turn).
    _, agent_id = _session_with_memories(world, settings)
    with unit_of_work(settings) as db:
        sql.run(db, "UPDATE memories SET content = content || ' Quokka quokka.' WHERE agent_id = %(a)s "
                    "AND content LIKE '%%toner%%'", {"a": agent_id})
        sql.run(db, "UPDATE memories SET content = 'Nothing.' WHERE agent_id = %(a)s AND content LIKE '%%Thursday%%'",
                {"a": agent_id})
    after = _assert_statistics_follow(settings, agent_id)
    assert after["quokka"] >= 1 and "thursday" not in after


def test_bm25_statistics_stay_when_a_session_is_purged_and_go_with_the_agent(world: World, settings: Any) -> None:
    name, agent_id = _session_with_memories(world, settings)
    before = _kept(settings, agent_id)
    assert world.http.delete(f"{world.base}/sessions/{name}").status_code == 200
    with unit_of_work(settings) as db:  # its retention is over: the purge removes it
        sql.run(db, "UPDATE sessions s SET expire_time = now() - interval '1 second' FROM namespaces n "
                    "WHERE n.id = s.namespace_id AND n.name = %(ns)s AND s.name = %(s)s", {"ns": world.ns, "s": name})
        assert sessions.purge_expired(db) >= 1
    assert _kept(settings, agent_id) == before  # the agent's memories stay, so do their statistics
    _assert_statistics_follow(settings, agent_id)
    assert world.http.delete(f"{world.base}/agents/ada").status_code == 204
    assert _kept(settings, agent_id) == (None, {})


def test_bm25_statistics_writers_of_one_agent_queue_on_its_corpus_row(world: World, settings: Any) -> None:
    # Two transactions delete memories of one agent whose lexemes overlap: the second waits for the
    # first at the agent's corpus row, before touching any lexeme, so the first can go on writing
    # (no deadlock), and both counts land.
    _, agent_id = _session_with_memories(world, settings)
    ids = [m["id"] for m in world.get("/agents/ada/memories").json()["items"]]
    assert len(ids) >= 3
    url = libpq(settings.database_url)
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        first.execute("DELETE FROM memories WHERE id = %s", (ids[0],))
        errors: list[BaseException] = []

        def delete_another() -> None:
            try:
                second.execute("DELETE FROM memories WHERE id = %s", (ids[1],))
                second.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        waiter = threading.Thread(target=delete_another)
        waiter.start()
        deadline = time.monotonic() + 20
        while not first.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                                (second.info.backend_pid,)).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the second writer never waited"
            time.sleep(0.02)
        first.execute("DELETE FROM memories WHERE id = %s", (ids[2],))  # still its turn: it holds the row
        first.commit()
        waiter.join(timeout=20)
    assert not errors and not waiter.is_alive()
    _assert_statistics_follow(settings, agent_id)
