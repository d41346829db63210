"""The built-in integrator: deterministic, offline, extractive; one insight per topic of the session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from shared.integrators import builtin
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

README_SESSION = [
    ChatTurn(1, "user", "My name is Grace and I maintain the billing service written in Go."),
    ChatTurn(2, "ada", "Nice to meet you Grace. What is failing in billing?"),
    ChatTurn(3, "user", "Invoices for customers in Japan are rounded wrongly since the tax change in April."),
]


def _reflection(turns: Iterable[ChatTurn]) -> Reflection:
    return Reflection(agent="support-bot", agent_description="Helps with billing.", turns=list(turns))


def _many_turns(n: int) -> list[ChatTurn]:
    speakers = ["user", "assistant"]
    return [ChatTurn(seq=i + 1, speaker=speakers[i % 2], content=f"{TOPICS[i % len(TOPICS)]} (note {i})") for i in range(n)]


def _distinct_topics(n: int) -> list[ChatTurn]:
    """``n`` turns, each on its own topic: names no other turn uses."""
    return [ChatTurn(i + 1, "user", f"Project Zeta{i} moves Omega{i} to Kappa{i} before the Sigma{i} audit.") for i in range(n)]


def _cited(insights: list[InsightDraft]) -> set[int]:
    return {seq for insight in insights for seq in insight.evidence}


# --- what is remembered ---------------------------------------------------------------------------


def test_the_readme_session_keeps_the_japan_invoice_problem() -> None:
    insights = BuiltinIntegrator().reflect(_reflection(README_SESSION))

    assert [(i.content, i.evidence) for i in insights] == [
        ("user: My name is Grace and I maintain the billing service written in Go.", [1]),
        ("user: Invoices for customers in Japan are rounded wrongly since the tax change in April.", [3]),
    ]
    assert all(1 <= i.importance <= 10 for i in insights)


def test_greetings_and_bare_questions_are_not_insights() -> None:
    # Each test writes its conversation out in full (here as in test_profiles.py): lists of ChatTurn alike
    # in shape by design, since what each turn says is what the test is about.
    turns = [
        ChatTurn(1, "user", "Hi there! Good morning."),
        ChatTurn(2, "assistant", "Nice to meet you Grace. What is failing in billing?"),
        ChatTurn(3, "user", "Thanks, great!"),
        ChatTurn(4, "assistant", "Can you check it?"),
        ChatTurn(5, "user", "ok 👍"),
    ]
    assert BuiltinIntegrator().reflect(_reflection(turns)) == []


def test_a_question_that_carries_its_own_facts_is_kept() -> None:
    turns = [ChatTurn(1, "user", "Shall we move the billing deploy to Friday after the Postgres migration?")]
    insights = BuiltinIntegrator().reflect(_reflection(turns))
    assert [i.evidence for i in insights] == [[1]]
    assert insights[0].content == f"user: {turns[0].content}"


def test_filler_sentences_are_dropped_from_a_turn_that_states_a_fact() -> None:
    turns = [ChatTurn(1, "user", "Hi! Thanks a lot. The staging cluster runs out of disk every Monday night.")]
    insights = BuiltinIntegrator().reflect(_reflection(turns))
    assert [i.content for i in insights] == ["user: The staging cluster runs out of disk every Monday night."]


def test_every_fact_bearing_turn_is_covered() -> None:
    turns = [
        ChatTurn(1, "alice", "We should migrate the reporting database to PostgreSQL 16 next week."),
        ChatTurn(2, "bob", "Agreed. The migration needs a maintenance window on Saturday night."),
        ChatTurn(3, "alice", "Also, the on-call rotation changes: Carol takes over from Dave in March."),
        ChatTurn(4, "bob", "Ok."),
        ChatTurn(5, "alice", "Can you check the backups?"),
        ChatTurn(6, "bob", "The nightly backups of the reporting database completed, 42 GB in S3."),
        ChatTurn(7, "alice", "Decision: we freeze schema changes until the PostgreSQL migration is done."),
        ChatTurn(8, "bob", "Thanks!"),
    ]
    insights = BuiltinIntegrator().reflect(_reflection(turns))

    assert _cited(insights) == {1, 2, 3, 6, 7}
    text = " ".join(i.content for i in insights)
    assert "Carol takes over from Dave in March" in text
    assert "we freeze schema changes" in text
    assert "Can you check the backups?" not in text


def test_sentences_on_one_topic_are_grouped_with_all_their_evidence() -> None:
    # Written out in full, as every conversation of this file (see the first one).
    turns = [
        ChatTurn(1, "user", "Hi! Starting in January our invoices need the new German tax change applied."),
        ChatTurn(2, "assistant", "Understood: I'll apply the German tax change to all invoices from January on."),
        ChatTurn(3, "user", "Separately, the Kubernetes cluster in Frankfurt keeps evicting the search pods."),
        ChatTurn(4, "user", "Great, thanks. The German tax change also applies to the January credit notes."),
    ]
    insights = BuiltinIntegrator().reflect(_reflection(turns))

    by_evidence = {tuple(i.evidence): i.content for i in insights}
    assert set(by_evidence) == {(1, 2, 4), (3,)}
    tax = by_evidence[(1, 2, 4)]
    assert tax.startswith("user: Starting in January our invoices need the new German tax change applied.")
    assert "assistant: Understood: I'll apply the German tax change" in tax
    assert "Hi!" not in tax and "Great, thanks." not in tax
    assert by_evidence[(3,)] == f"user: {turns[2].content}"


def test_a_repeated_statement_is_quoted_once_and_cited_each_time() -> None:
    said = "The next release of the billing service fixes invoice rounding for customers in Japan"
    turns = [ChatTurn(1, "user", f"{said}."), ChatTurn(2, "user", f"{said.upper()}!"), ChatTurn(3, "user", f"  {said}")]
    insights = BuiltinIntegrator().reflect(_reflection(turns))
    assert len(insights) == 1
    assert insights[0].evidence == [1, 2, 3]
    assert insights[0].content.count("billing service") == 1


def test_a_near_repeat_that_says_something_else_is_not_cited() -> None:
    turns = [
        ChatTurn(1, "user", "Release 1 of the billing service fixes invoice rounding for customers in Japan."),
        ChatTurn(2, "user", "Release 2 of the billing service fixes invoice rounding for customers in Japan."),
        ChatTurn(3, "omar", "Grace is vegetarian, remember it when we order lunch for the team."),
        ChatTurn(4, "omar", "Grace is not vegetarian, remember it when we order lunch for the team."),
    ]
    insights = BuiltinIntegrator().reflect(_reflection(turns))
    for insight in insights:
        for seq in insight.evidence:
            assert turns[seq - 1].content in insight.content, (seq, insight)


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
    assert all(i.content.startswith(("user: ", "assistant: ")) for i in insights), "a statement with its speaker"
    # The thank-you is not the insight.
    assert not any(3 in i.evidence for i in insights)


# --- how many ------------------------------------------------------------------------------------


def test_the_number_of_insights_follows_the_distinct_topics() -> None:
    integrator = BuiltinIntegrator()
    for n in (1, 3, 5):
        assert len(integrator.reflect(_reflection(_distinct_topics(n)))) == n
    # The same topics coming back for 200 turns are as many insights as one round of them.
    once = integrator.reflect(_reflection(_many_turns(len(TOPICS))))
    assert len(once) >= 4
    assert len(integrator.reflect(_reflection(_many_turns(200)))) == len(once)


def test_insights_are_capped_with_the_fact_bearing_turns() -> None:
    integrator = BuiltinIntegrator()
    # One per two fact-bearing turns, plus a little headroom, never more than max_insights.
    assert len(integrator.reflect(_reflection(_distinct_topics(12)))) == 6 + integrator.insight_headroom
    assert len(integrator.reflect(_reflection(_distinct_topics(60)))) == integrator.max_insights


def test_evidence_and_importance_are_valid() -> None:
    turns = _many_turns(40)
    seqs = {t.seq for t in turns}
    insights = BuiltinIntegrator().reflect(_reflection(turns))

    assert 1 <= len(insights) <= BuiltinIntegrator.max_insights
    for insight in insights:
        assert insight.evidence, "every insight cites its turns"
        assert insight.evidence == sorted(set(insight.evidence))
        assert set(insight.evidence) <= seqs
        assert isinstance(insight.importance, int) and not isinstance(insight.importance, bool)
        assert 1 <= insight.importance <= 10
        assert len(insight.content) < 400


def test_a_topic_the_session_returns_to_is_more_important_than_a_passing_remark() -> None:
    turns = [
        *[ChatTurn(i + 1, "user", f"Invoices in Japan are rounded wrongly again, batch {i} of the April run.") for i in range(6)],
        ChatTurn(7, "user", "The office printer on floor two is out of toner."),
    ]
    insights = BuiltinIntegrator().reflect(_reflection(turns))
    (japan,) = [i for i in insights if "Japan" in i.content]
    (printer,) = [i for i in insights if "printer" in i.content]
    # Each batch is its own statement: the insight cites the ones it quotes.
    assert japan.evidence and set(japan.evidence) <= {1, 2, 3, 4, 5, 6} and printer.evidence == [7]
    assert japan.importance > printer.importance


# --- robustness ----------------------------------------------------------------------------------


def test_same_turns_same_insights() -> None:
    turns = _many_turns(60)
    first = BuiltinIntegrator().reflect(_reflection(turns))
    integrator = BuiltinIntegrator()
    assert integrator.reflect(_reflection(turns)) == first
    assert integrator.reflect(_reflection(turns)) == first
    assert first


def test_same_turns_same_insights_whatever_the_hash_seed() -> None:
    script = (
        "import json, sys\n"
        "from shared.integrators.base import ChatTurn, Reflection\n"
        "from shared.integrators.builtin import BuiltinIntegrator\n"
        "turns = [ChatTurn(*t) for t in json.loads(sys.stdin.read())]\n"
        "out = BuiltinIntegrator().reflect(Reflection('a', '', turns))\n"
        "print(json.dumps([[i.content, i.importance, i.evidence] for i in out]))\n"
    )
    turns = [*README_SESSION, *_distinct_topics(8), *_many_turns(30)]
    payload = json.dumps([[i + 1, t.speaker, t.content] for i, t in enumerate(turns)])
    root = Path(__file__).resolve().parents[2]
    outputs = []
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", script], input=payload, capture_output=True, text=True, env=env, cwd=root, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]


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

    assert 1 <= len(insights) <= integrator.max_insights
    for insight in insights:
        assert set(insight.evidence) <= {t.seq for t in turns}
        assert 1 <= insight.importance <= 10
        assert len(insight.content) <= 400, "long turns are trimmed"
        assert "\x00" not in insight.content, "PostgreSQL text refuses NUL"
    cited = _cited(insights)
    assert {1, 2, 4} <= cited, "Cyrillic, Chinese and the long turn each state something"
    assert not cited & {3, 5, 7, 8}, "emoji, a letter, ok and a blob do not"
    assert integrator.reflect(_reflection(turns)) == insights


def test_a_thousand_turns_stay_within_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # Speed is measured by `make bench`, never asserted here: the bounded work is.
    integrator = BuiltinIntegrator()
    fed: list[int] = []
    split: list[int] = []
    extract = integrator._extractor.extract_keywords
    segment = builtin._segment

    def spy_extract(text: str) -> list[tuple[str, float]]:
        fed.append(len(text))
        keywords: list[tuple[str, float]] = extract(text)
        return keywords

    def spy_segment(language: str, text: str) -> Iterable[str]:
        split.append(len(text))
        return segment(language, text)

    monkeypatch.setattr(integrator._extractor, "extract_keywords", spy_extract)
    monkeypatch.setattr(builtin, "_segment", spy_segment)
    long_turns = [ChatTurn(1001 + i, "user", TOPICS[i % 4] * 400) for i in range(20)]
    insights = integrator.reflect(_reflection([*_distinct_topics(1000), *long_turns]))

    assert len(fed) == 1 and fed[0] <= integrator.yake_char_budget
    assert sum(split) <= integrator.split_char_budget
    assert len(insights) == integrator.max_insights
    assert all(len(i.content) < 400 for i in insights)
