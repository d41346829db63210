"""The built-in integrator: deterministic, offline, extractive."""

from __future__ import annotations


from shared.integrators.base import ChatTurn, InsightDraft, Reflection
from shared.integrators.builtin import BuiltinIntegrator

TOPICS = [
    "The quarterly invoice for Acme Corp must include the new German tax change.",
    "Deploy the billing service after the database migration finishes on Friday.",
    "Customer refunds over 500 euros need approval from the finance team.",
    "Latency on the payment server spiked after yesterday's deploy.",
    "ok",
    "Thanks!",
    "Let's schedule a meeting with the finance team about the refund policy.",
]


def _reflection(turns: list[ChatTurn]) -> Reflection:
    return Reflection(agent="support-bot", agent_description="Helps with billing.", turns=turns)


def _many_turns(n: int) -> list[ChatTurn]:
    speakers = ["user", "assistant"]
    return [
        ChatTurn(seq=i + 1, speaker=speakers[i % 2], content=f"{TOPICS[i % len(TOPICS)]} (note {i})")
        for i in range(n)
    ]


def test_realistic_conversation_gives_salient_insight() -> None:
    turns = [
        ChatTurn(1, "user", "Hi! Starting in January our invoices need the new German tax change applied."),
        ChatTurn(2, "assistant", "Understood: I'll apply the German tax change to all invoices from January on."),
        ChatTurn(3, "user", "Great, thanks."),
    ]
    insights = BuiltinIntegrator().reflect(_reflection(turns))

    assert len(insights) >= 1
    assert all(isinstance(i, InsightDraft) for i in insights)
    text = " ".join(i.content.lower() for i in insights)
    assert "tax change" in text
    assert any(i.content.startswith("[") for i in insights), "keyphrase tags prefix the insight"
    assert all(("user:" in i.content) or ("assistant:" in i.content) for i in insights)
    # The thank-you is not the insight.
    assert not any(i.evidence == [3] for i in insights)


def test_same_input_same_output_across_instances() -> None:
    turns = _many_turns(60)
    first = BuiltinIntegrator().reflect(_reflection(turns))
    integrator = BuiltinIntegrator()
    assert integrator.reflect(_reflection(turns)) == first
    assert integrator.reflect(_reflection(turns)) == first
    assert first


def test_evidence_and_importance_are_valid() -> None:
    turns = _many_turns(40)
    seqs = {t.seq for t in turns}
    insights = BuiltinIntegrator().reflect(_reflection(turns))

    assert 1 <= len(insights) <= 8
    assert len(insights) == 8 or len(insights) >= 40 // 4 - 1
    for insight in insights:
        assert insight.evidence, "every insight cites its turn"
        assert set(insight.evidence) <= seqs
        assert isinstance(insight.importance, int) and not isinstance(insight.importance, bool)
        assert 1 <= insight.importance <= 10
        assert len(insight.content) < 400


def test_number_of_insights_scales_with_turns() -> None:
    integrator = BuiltinIntegrator()
    assert len(integrator.reflect(_reflection(_many_turns(4)))) == 1
    assert len(integrator.reflect(_reflection(_many_turns(12)))) == 3
    assert len(integrator.reflect(_reflection(_many_turns(200)))) == 8


def test_empty_and_blank_input() -> None:
    integrator = BuiltinIntegrator()
    assert integrator.reflect(_reflection([])) == []
    assert integrator.reflect(_reflection([ChatTurn(1, "user", ""), ChatTurn(2, "user", "  \n\t ")])) == []


def test_only_trivial_turns_give_nothing() -> None:
    turns = [ChatTurn(1, "user", "ok"), ChatTurn(2, "assistant", "👍"), ChatTurn(3, "user", "?!")]
    assert BuiltinIntegrator().reflect(_reflection(turns)) == []


def test_unicode_emoji_and_long_turns() -> None:
    long_turn = "The migration plan for the reporting database is long. " * 2000  # ~110k chars
    turns = [
        ChatTurn(1, "пользователь", "Привет! Нам нужно обновить налоговые ставки в системе счетов 🧾."),
        ChatTurn(2, "用户", "我们需要在一月之前更新德国的税率变化，请确认。"),
        ChatTurn(3, "user", "🎉🎉🎉 " * 500),
        ChatTurn(4, "user", long_turn),
        ChatTurn(5, "user", "a"),
        ChatTurn(6, "user", "\x00\u200b\ufeff control & zero-width chars, café naïve Ωmega"),
        ChatTurn(7, "assistant", "ok"),
        ChatTurn(8, "user", "x" * 5000),
    ]
    integrator = BuiltinIntegrator()
    insights = integrator.reflect(_reflection(turns))

    assert 1 <= len(insights) <= 8
    for insight in insights:
        assert set(insight.evidence) <= {t.seq for t in turns}
        assert 1 <= insight.importance <= 10
        assert len(insight.content) <= 400, "long turns are trimmed"
    assert integrator.reflect(_reflection(turns)) == insights


def test_one_thousand_turns_are_capped_at_eight_insights() -> None:
    # Speed is measured by `make bench`, never asserted here.
    integrator = BuiltinIntegrator()
    insights = integrator.reflect(_reflection(_many_turns(1000)))
    assert len(insights) == 8
