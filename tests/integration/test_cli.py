"""The `engram` client verbs for real: typer's CliRunner, the Python client, the in-process API on
the real PostgreSQL and Redis of the run. No worker runs here: jobs stay queued (watching them is
the e2e tests' business)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli.verbs as verbs
from cli.main import app as engram
from engram_client import EngramClient
from tests.conftest import ADMIN_KEY

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_process_api(http: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verbs, "make_client", lambda url, key: in_process(http, ADMIN_KEY))


def in_process(http: TestClient, key: str) -> EngramClient:
    # Starlette's TestClient is an httpx2.Client where httpx2 is installed (the MCP SDK of the dev extra
    # brings it); the client only calls its request(), which both have.
    return EngramClient(http=cast(httpx.Client, http), api_key=key)


@pytest.fixture
def ns() -> str:
    return "cli-" + secrets.token_hex(4)


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = runner.invoke(engram, list(args), input=input)
    assert result.exit_code == code, (args, result.exit_code, result.output, result.exception)
    return result.stdout


def run_json(*args: str, input: str | None = None) -> Any:
    return json.loads(run(*args, "--json", input=input))


def newcomer(ns: str) -> str:
    """A namespace with agents alice and bob bound to session `kickoff`."""
    assert run_json("ns", "put", ns, "--description", "cli test")["name"] == ns
    for agent in ("alice", "bob"):
        run("agents", "put", ns, agent, "--description", f"{agent} the tester")
    created = run_json("sessions", "create", ns, "kickoff", "--data", '{"topic": "launch"}')
    assert created["name"] == "kickoff" and created["data"] == {"topic": "launch"}
    assert "bound" in run("bind", ns, "kickoff", "alice")
    assert run_json("bind", ns, "kickoff", "bob")["name"] == "bob"
    return "kickoff"


def test_newcomer_flow(ns: str, tmp_path: Path) -> None:
    s = newcomer(ns)
    transcript = tmp_path / "chat.jsonl"
    transcript.write_text('{"speaker": "alice", "content": "We ship the beta on Friday."}\n\n'
                          '{"speaker": "carol", "content": "QA needs the build by Wednesday.", '
                          '"visible_to": ["alice"]}\n', encoding="utf-8")
    appended = run_json("turns", "append", ns, s, str(transcript))
    assert (appended["first_seq"], appended["last_seq"]) == (1, 2)
    assert "seq 3-3" in run("turns", "append", ns, s, "-", input='{"speaker": "carol", "content": "Agreed."}\n')
    assert "seq 4-4" in run("turns", "append", ns, s, input='{"turns": [{"speaker": "bob", "content": "ok"}]}')
    turns = run_json("turns", "list", ns, s)
    assert [t["seq"] for t in turns["items"]] == [1, 2, 3, 4] and turns["next_cursor"] is None
    assert "We ship the beta on Friday." in run("turns", "list", ns, s)

    participants = run_json("participants", ns, s)["items"]
    assert {p["name"]: p["pending_turns"] for p in participants} == {"alice": 4, "bob": 3}

    queued = run_json("integrate", ns, s)  # no worker here: the job stays queued
    assert queued["status"] == "queued" and queued["kind"] == "integrate" and queued["session"] == s
    assert queued["links"]["self"] == f"/v1/namespaces/{ns}/jobs/{queued['id']}"
    assert run_json("integrate", ns, s)["id"] == queued["id"]  # coalesced with the queued one

    jobs = run_json("jobs", "list", ns, "--session", s, "--kind", "integrate", "--status", "queued")
    assert [j["id"] for j in jobs["items"]] == [queued["id"]]
    assert queued["id"] in run("jobs", "show", ns, queued["id"])
    assert run_json("jobs", "show", ns, queued["id"])["status"] == "queued"
    cancelled = run_json("jobs", "cancel", ns, queued["id"])
    assert cancelled["status"] == "cancelled"
    assert "cancelled" in run("jobs", "list", ns)
    run("jobs", "cancel", ns, queued["id"], code=4)  # finished already: 409

    memories = run_json("agents", "memories", ns, "alice")
    assert memories == {"items": [], "next_cursor": None}
    assert run_json("insights", ns, s, "alice")["items"] == []


def test_integrate_human_output_points_at_the_job(ns: str) -> None:
    s = newcomer(ns)
    run("turns", "append", ns, s, input='{"speaker": "alice", "content": "hello"}')
    result = runner.invoke(engram, ["integrate", ns, s, "--idempotency-key", "first-integrate"])
    assert result.exit_code == 0, result.output
    job_id = run_json("jobs", "list", ns)["items"][0]["id"]
    assert job_id in result.stdout and "queued" in result.stdout and "integrate accepted" in result.stdout
    assert f"follow it: engram jobs watch {ns} {job_id}" in " ".join(result.stderr.split())
    again = run_json("integrate", ns, s, "--idempotency-key", "first-integrate")
    assert again["id"] == job_id
    truncate = run_json("truncate", ns, s)
    assert truncate["kind"] == "truncate" and truncate["status"] == "queued"


def test_sessions_lifecycle_and_exit_codes(ns: str) -> None:
    newcomer(ns)
    run("sessions", "show", ns, "nope", code=3)
    run("agents", "show", ns, "nobody", code=3)
    run("sessions", "create", ns, "kickoff", code=4)  # name taken
    generated = run_json("sessions", "create", ns)["name"]
    names = [s["name"] for s in run_json("sessions", "list", ns, "--all")["items"]]
    assert names == ["kickoff", generated]

    deleted = run_json("sessions", "delete", ns, generated)
    assert deleted["deleted_at"] is not None and deleted["expire_time"] is not None
    assert [s["name"] for s in run_json("sessions", "list", ns)["items"]] == ["kickoff"]
    assert generated in [s["name"] for s in run_json("sessions", "list", ns, "--include-deleted")["items"]]
    run("turns", "append", ns, generated, input='{"speaker": "a", "content": "x"}', code=4)  # deleted
    run("integrate", ns, generated, code=4)
    assert run_json("sessions", "undelete", ns, generated)["deleted_at"] is None
    run("sessions", "undelete", ns, generated, code=4)  # live already
    updated = run_json("sessions", "update", ns, generated, "--data", '{"a": 1}', "--description", "d")
    assert updated["data"] == {"a": 1} and updated["description"] == "d"

    assert "unbound" in run("unbind", ns, "kickoff", "bob")
    assert [p["name"] for p in run_json("participants", ns, "kickoff")["items"]] == ["alice"]
    run("agents", "delete", ns, "bob")
    run("agents", "show", ns, "bob", code=3)
    assert [a["name"] for a in run_json("agents", "list", ns)["items"]] == ["alice"]


def test_lists_page_and_follow_cursors(ns: str) -> None:
    run("ns", "put", ns)
    for i in range(5):
        run("agents", "put", ns, f"a{i}")
    first = run_json("agents", "list", ns, "--limit", "2")
    assert [a["name"] for a in first["items"]] == ["a0", "a1"] and first["next_cursor"]
    second = run_json("agents", "list", ns, "--limit", "2", "--cursor", first["next_cursor"])
    assert [a["name"] for a in second["items"]] == ["a2", "a3"]
    everything = run_json("agents", "list", ns, "--limit", "2", "--all")
    assert [a["name"] for a in everything["items"]] == [f"a{i}" for i in range(5)]
    assert everything["next_cursor"] is None
    assert "--cursor" in runner.invoke(engram, ["agents", "list", ns, "--limit", "2"]).stderr


def test_turn_files_json_batches_and_bad_input(ns: str, tmp_path: Path) -> None:
    s = newcomer(ns)
    doc = tmp_path / "turns.json"
    doc.write_text(json.dumps({"turns": [{"speaker": "alice", "content": f"line {i}"} for i in range(7)]}))
    res = run_json("turns", "append", ns, s, str(doc), "--batch-size", "3", "--idempotency-key", "import-1")
    assert (res["first_seq"], res["last_seq"], len(res["turns"])) == (1, 7, 7)
    replay = run_json("turns", "append", ns, s, str(doc), "--batch-size", "3", "--idempotency-key", "import-1")
    assert replay["last_seq"] == 7  # the same batches and keys: replayed, nothing appended twice
    assert run_json("sessions", "show", ns, s)["turn_count"] == 7

    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"speaker": "bob", "content": "from a list"}]))
    assert run_json("turns", "append", ns, s, str(listed))["first_seq"] == 8

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"speaker": "a", "content": "ok"}\n{"speaker": "a", "content": \n')
    result = runner.invoke(engram, ["turns", "append", ns, s, str(bad)])
    assert result.exit_code == 2 and f"error: {bad}:2: not valid JSON" in result.stderr
    result = runner.invoke(engram, ["turns", "append", ns, s], input='{"speaker": "a"}\n')
    assert result.exit_code == 2 and "stdin:1: content" in result.stderr
    run("turns", "append", ns, s, str(tmp_path / "missing.jsonl"), code=2)
    run("turns", "append", ns, s, input="", code=2)
    assert run_json("sessions", "show", ns, s)["turn_count"] == 8  # nothing of the bad files was sent


def test_keys_and_namespaces(ns: str) -> None:
    run("ns", "put", ns)
    assert ns in [n["name"] for n in run_json("ns", "list", "--all")["items"]]
    assert run_json("ns", "show", ns)["name"] == ns
    run("ns", "show", "cli-missing-" + secrets.token_hex(3), code=3)
    created = run_json("keys", "create", ns, "--description", "ci")
    assert created["secret"] and created["id"]
    assert [k["id"] for k in run_json("keys", "list", ns)["items"]] == [created["id"]]
    assert "secret" not in run("keys", "list", ns)
    run("keys", "delete", ns, created["id"])
    assert run_json("keys", "list", ns)["items"] == []


def test_errors_go_to_stderr_with_exit_codes(ns: str, http: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(engram, ["sessions", "show", ns, "nope", "--json"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == f"error: namespace '{ns}' does not exist\n"
    run("ns", "put", ns)
    result = runner.invoke(engram, ["sessions", "create", ns, "Bad Name!"])
    assert result.exit_code == 5 and result.stderr.startswith("error: invalid request")  # 422 from the API
    assert "body.name:" in result.stderr  # the invalid field is named
    run("agents", "put", ns, "a", "--metadata", "[1, 2]", code=2)

    monkeypatch.setattr(verbs, "make_client", lambda url, key: in_process(http, "wrong-key"))
    result = runner.invoke(engram, ["ns", "list"])
    assert result.exit_code == 5 and "unknown or revoked key" in result.stderr

    monkeypatch.setattr(verbs, "make_client", lambda url, key: EngramClient(base_url=url, api_key=key, timeout=2))
    result = runner.invoke(engram, ["ns", "list", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 6 and "http://127.0.0.1:9" in result.stderr


def test_recall_context_forget_and_redact(ns: str, settings: Any) -> None:
    from shared.jobs.runner import run_job

    s = newcomer(ns)
    run("turns", "append", ns, s, input='{"speaker": "user", "content": "Invoices for customers in Japan are rounded '
                                         'wrongly since the tax change in April."}\n'
                                         '{"speaker": "alice", "content": "Thanks, I will look at the rounding."}\n')
    job = run_json("integrate", ns, s)["id"]
    assert run_job(job, settings, "cli-test") == "succeeded"

    recalled = run_json("recall", ns, "alice", "what about the Japan invoices?", "--limit", "3")["items"]
    assert "Japan" in recalled[0]["content"] and recalled[0]["evidence"]
    table = run("recall", ns, "alice", "Japan invoices", "--kind", "observation")
    assert "Japan" in table and "observation" in table and "reflection" not in table
    assert "Japan" in run("context", ns, s, "alice", "--query", "Japan", "--max-chars", "500")

    first = recalled[0]["id"]
    assert "forgotten" in run("forget", ns, "alice", str(first))
    assert first not in [m["id"] for m in run_json("agents", "memories", ns, "alice", "--all")["items"]]
    run("forget", ns, "alice", str(first), code=3)

    assert "turn 1 redacted" in run("redact", ns, s, "1")
    assert run_json("turns", "list", ns, s)["items"][0]["content"] == ""


def test_webhooks_put_list_show_deliveries_delete(ns: str) -> None:
    s = newcomer(ns)
    hook = "https://93.184.215.14/hooks/engram"  # a public address: the API under test refuses private ones
    created = run_json("webhooks", "put", ns, "ci", hook, "--event", "job.succeeded", "--event", "job.cancelled",
                       "--description", "build bot")
    assert created["secret"].startswith("whsec_") and created["events"] == ["job.succeeded", "job.cancelled"]
    result = runner.invoke(engram, ["webhooks", "put", ns, "pager", hook, "--event", "job.failed"])
    assert result.exit_code == 0, result.output
    assert "secret" not in run_json("webhooks", "show", ns, "pager")
    assert "webhook created" in result.stdout and "signing secret" in result.stdout
    assert "whsec_" in result.stdout and "shown only once" in " ".join(result.stderr.split())

    updated = runner.invoke(engram, ["webhooks", "put", ns, "pager", hook + "/v2", "--event", "job.failed"])
    assert updated.exit_code == 0 and "webhook updated" in updated.stdout and "whsec_" not in updated.stdout
    again = run_json("webhooks", "put", ns, "ci", hook, "--event", "job.cancelled", "--description", "build bot")
    assert "secret" not in again and again["events"] == ["job.cancelled"]  # an update does not show it again

    assert [w["name"] for w in run_json("webhooks", "list", ns)["items"]] == ["ci", "pager"]
    listed = run("webhooks", "list", ns)
    assert "pager" in listed and "whsec_" not in listed
    assert run_json("webhooks", "show", ns, "pager")["url"] == hook + "/v2"
    assert "build bot" in run("webhooks", "show", ns, "ci")
    run("webhooks", "show", ns, "nope", code=3)

    # The API checks what the command sends: unknown events and private addresses are 422 (exit 5).
    result = runner.invoke(engram, ["webhooks", "put", ns, "bad", hook, "--event", "job.started"])
    assert result.exit_code == 5 and "body.events" in result.stderr
    result = runner.invoke(engram, ["webhooks", "put", ns, "local", "http://127.0.0.1:9/x", "--event", "job.failed"])
    assert result.exit_code == 5 and "private, loopback or link-local" in result.stderr
    run("webhooks", "put", ns, "nothing", hook, code=2)  # --event is required

    # A finished job writes a delivery for each endpoint subscribed to its status (no worker sends it here).
    run("turns", "append", ns, s, input='{"speaker": "alice", "content": "hello"}')
    job = run_json("integrate", ns, s)["id"]
    run("jobs", "cancel", ns, job)
    deliveries = run_json("webhooks", "deliveries", ns, "ci")["items"]
    assert [(d["event"], d["job_id"], d["status"], d["attempts"]) for d in deliveries] == [
        ("job.cancelled", job, "pending", [])]
    assert deliveries[0]["id"] in run("webhooks", "deliveries", ns, "ci")
    assert run_json("webhooks", "deliveries", ns, "pager", "--all") == {"items": [], "next_cursor": None}

    run("webhooks", "delete", ns, "pager")
    assert run("webhooks", "delete", ns, "ci", "--json") == ""  # 204: nothing to print
    run("webhooks", "delete", ns, "ci", code=3)
    run("webhooks", "deliveries", ns, "ci", code=3)
    assert run_json("webhooks", "list", ns)["items"] == []
