"""An integration with nothing new for any participant is finished by its claim's transaction
(shared.jobs.runs.FINISH_IF_IDLE): the same watermarks, result and progress as the usual way,
without asking the integrator."""

from __future__ import annotations

from shared.config import Settings
from shared.jobs.runner import run_job
from tests.integration import echo_integrator as echo
from tests.integration.conftest import World
from tests.integration.test_integrate_semantics import LINES, WORKER, echo_settings, integrate, job, participants, session_with

__all__ = ["echo_settings"]  # the fixture, used by name below


def test_turns_nobody_sees_move_the_watermarks_of_an_idle_integration(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", "bob", "cy", lines=1)
    integrate(world, echo_settings, name)
    world.say(name, "user", LINES[1], visible_to=["cy"])  # 2: cy only
    assert world.http.delete(f"{world.base}/sessions/{name}/participants/cy").status_code == 204
    calls = len(echo.given)
    done = integrate(world, echo_settings, name)
    assert len(echo.given) == calls
    assert done["progress"] == {"completed": 2, "total": 2}
    assert done["result"] == {"participants": [
        {"name": n, "turns_integrated": 0, "insights_created": 0, "memories_created": 0, "watermark": 2}
        for n in ("ada", "bob")]}
    assert {n: p["last_integration_turn"] for n, p in participants(world, name).items()} == {"ada": 2, "bob": 2}


def test_an_idle_integration_dispatches_the_next_job(world: World, echo_settings: Settings) -> None:
    name = session_with(world, "ada", lines=1)
    integrate(world, echo_settings, name)
    idle = world.post(f"/sessions/{name}/integrate").json()["id"]
    after = world.post(f"/sessions/{name}/truncate").json()["id"]
    assert run_job(after, echo_settings, WORKER) == "skipped"  # not the head yet
    assert run_job(idle, echo_settings, WORKER) == "succeeded"
    assert job(world, idle)["result"]["participants"][0]["watermark"] == 1
    assert run_job(after, echo_settings, WORKER) == "succeeded"


def test_a_session_without_participants_integrates_to_an_empty_result(world: World, echo_settings: Settings) -> None:
    name = session_with(world, lines=2)
    done = integrate(world, echo_settings, name)
    assert done["result"] == {"participants": []}
    assert done["progress"] == {"completed": 0, "total": 0}
