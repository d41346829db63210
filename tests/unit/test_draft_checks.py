"""What an integrator returns is checked before anything is written (DESIGN.md section 2)."""

from __future__ import annotations

import pytest

from shared.integrators import ChatTurn, InsightDraft, IntegratorError
from shared.integrators.builtin import BuiltinIntegrator
from shared.jobs.effects import check_drafts

TURNS = [ChatTurn(seq=1, speaker="user", content="a"), ChatTurn(seq=2, speaker="ada", content="b")]


@pytest.mark.parametrize(("draft", "why"), [
    (InsightDraft(content="", importance=5, evidence=[1]), "empty or invalid content"),
    (InsightDraft(content="nul \x00 inside", importance=5, evidence=[1]), "empty or invalid content"),
    (InsightDraft(content="lone \ud800 surrogate", importance=5, evidence=[1]), "empty or invalid content"),
    (InsightDraft(content="ok", importance=0, evidence=[1]), "not in 1..10"),
    (InsightDraft(content="ok", importance=11, evidence=[1]), "not in 1..10"),
    (InsightDraft(content="ok", importance=5, evidence=[3]), "cites turns it was not given"),
])
def test_drafts_that_cannot_be_stored_fail_the_job_before_any_write(draft: InsightDraft, why: str) -> None:
    with pytest.raises(IntegratorError, match=why) as info:
        check_drafts([InsightDraft(content="fine", importance=5, evidence=[2]), draft], TURNS, BuiltinIntegrator())
    assert info.value.retryable is False and "insight 1" in str(info.value)


def test_valid_drafts_pass() -> None:
    check_drafts([InsightDraft(content="ü ✓ 日本", importance=10, evidence=[1, 2])], TURNS, BuiltinIntegrator())
