"""Profiles: the built-in integrator gathers what a batch says about each name it mentions."""

from __future__ import annotations

from shared.integrators import profiles
from shared.integrators.base import ChatTurn, Reflection
from shared.integrators.builtin import BuiltinIntegrator
from shared.integrators.profiles import Mention

STOP = frozenset({"the", "a", "i", "we", "and"})


def _mentions(*texts: str) -> list[Mention]:
    return [Mention(seq=i + 1, speaker="user", text=t, order=i, salience=1.0) for i, t in enumerate(texts)]


def _profiles(*texts: str) -> list[profiles.Profile]:
    return profiles.profiles(_mentions(*texts), STOP, most=10, quotes=6, chars=600, same=lambda a, b: a == b)


def test_a_name_is_a_word_capitalized_inside_a_sentence_somewhere_in_the_batch() -> None:
    found = profiles.find_names(_mentions(
        "Grace works from the Lisbon office.",
        "Ask Grace about the invoices.",
        "Deploys happen after lunch.",
    ), STOP)
    # "Grace" is capitalized inside the second sentence; "Lisbon" inside the first; "Deploys" and
    # "Ask" only ever open a sentence.
    assert set(found) == {"Grace", "Lisbon"}
    assert [m.seq for m in found["Grace"]] == [1, 2]


def test_a_possessive_is_about_the_name() -> None:
    found = profiles.find_names(_mentions("Note: Kenji's birthday is on June 12.", "We owe Kenji a coffee."), STOP)
    assert [m.seq for m in found["Kenji"]] == [1, 2]


def test_months_weekdays_and_stopwords_are_not_names() -> None:
    found = profiles.find_names(_mentions(
        "The release moves to Friday in June.", "Until Friday in June, the freeze holds.", "Yes, and The Team agrees."),
        STOP)
    assert set(found) == {"Team"}


def test_a_profile_gathers_the_sentences_of_a_name_from_two_turns_or_more() -> None:
    found = _profiles(
        "Grace works from the Lisbon office.",
        "Heads-up for the team dinner: Grace is vegetarian.",
        "Marcus is on holiday in May, says Grace.",
    )
    # Marcus is named by one turn only: its observation says it all.
    assert [(p.name, [m.seq for m in p.quoted]) for p in found] == [("Grace", [1, 2, 3])]
    assert profiles.render(found[0]) == (
        "Grace — user: Grace works from the Lisbon office. Heads-up for the team dinner: Grace is vegetarian. "
        "Marcus is on holiday in May, says Grace.")
    assert 1 <= found[0].importance <= 10


def test_a_profile_that_a_topic_insight_holds_already_is_left_out() -> None:
    mentions = _mentions("Grace works from the Lisbon office.", "Grace is vegetarian, says Omar.")
    kept = profiles.profiles(mentions, STOP, most=10, quotes=6, chars=600, same=lambda a, b: a == b,
                             grouped=[frozenset({1, 2, 3})])
    assert kept == []


def test_a_profile_quotes_within_its_budget_and_cites_only_what_it_quotes() -> None:
    texts = [f"Yesterday Grace fixed bug number {n} in the billing service." for n in range(10)]
    (few,) = profiles.profiles(_mentions(*texts), STOP, most=10, quotes=3, chars=600, same=lambda a, b: a == b)
    assert [m.seq for m in few.quoted] == [8, 9, 10]  # equal salience: the latest first
    assert few.turns == 10
    (short,) = profiles.profiles(_mentions(*texts), STOP, most=10, quotes=6, chars=200, same=lambda a, b: a == b)
    assert len(short.quoted) == 2 and len(profiles.render(short)) <= 200


def test_names_need_a_script_with_case() -> None:
    found = profiles.find_names(_mentions(
        "Вчера мы встретились с Иваном в Москве.", "Иван сказал, что тесты снова падают у Ольги.",
        "東京で会議がありました。", "会議は東京で続きます。"), STOP)
    # Lowercase Cyrillic words are no names; CJK has no case, so no names at all.
    assert set(found) == {"Иваном", "Москве", "Ольги"}


def test_the_builtin_integrator_writes_a_profile_per_name_with_its_evidence() -> None:
    turns = [
        ChatTurn(1, "yusuf", "Grace works from the Nairobi office."),
        ChatTurn(2, "omar", "The billing service was rewritten in Rust last year."),
        ChatTurn(3, "lena", "Remember when we order food that Grace is allergic to peanuts."),
        ChatTurn(4, "omar", "For anything quick, Grace likes a phone call best."),
    ]
    insights = BuiltinIntegrator().reflect(Reflection(agent="ada", agent_description="", turns=turns))
    (grace,) = [i for i in insights if i.content.startswith("Grace — ")]
    assert grace.evidence == [1, 3, 4]
    for turn in (turns[0], turns[2], turns[3]):
        assert turn.content in grace.content


def test_a_profile_draws_on_the_earlier_turns_of_a_name_the_new_turns_mention() -> None:
    earlier = [
        ChatTurn(1, "yusuf", "Grace works from the Nairobi office."),
        ChatTurn(2, "omar", "Remember when we order food that Marcus is allergic to peanuts."),
        ChatTurn(3, "lena", "Marcus joined as the engineering manager."),
    ]
    turns = [
        ChatTurn(4, "omar", "For anything quick, Grace likes a phone call best."),
        ChatTurn(5, "lena", "The billing service was rewritten in Rust last year."),
    ]
    insights = BuiltinIntegrator().reflect(Reflection(agent="ada", agent_description="", turns=turns, earlier=earlier))
    profiled = {i.content.split(" — ")[0]: i for i in insights if " — " in i.content}
    # Grace is named by a new turn: her profile adds what was said of her before, in order.
    assert set(profiled) == {"Grace"}
    assert profiled["Grace"].evidence == [1, 4]
    assert profiled["Grace"].content == ("Grace — yusuf: Grace works from the Nairobi office. "
                                         "omar: For anything quick, Grace likes a phone call best.")
    # Marcus is named by earlier turns only: an earlier integration wrote his profile.
    assert all(i.evidence and max(i.evidence) >= 4 for i in insights)


def test_a_profile_short_of_room_quotes_the_new_mentions_first() -> None:
    mentions = [Mention(1, "a", "Grace is very important and salient here, Grace says.", -2, 9.0),
                Mention(2, "b", "Ask Grace about it.", -1, 8.0),
                Mention(3, "c", "Yes, Grace agrees.", 0, 1.0)]
    (profile,) = profiles.profiles(mentions, STOP, most=10, quotes=2, chars=600, same=lambda a, b: a == b,
                                   new_from=0)
    assert [m.seq for m in profile.quoted] == [1, 3]
