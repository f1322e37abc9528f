"""actions/faq.py: one answer per FAQ intent, from bot/content/faq.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actions.faq import INTENT_TOPICS, ActionAnswerFaq
from bot.services import faq
from tests.actions.conftest import BAD_INPUTS, assert_polite, make_tracker, one_text

ROOT = Path(__file__).resolve().parents[2]


def faq_intents_in_rules() -> set[str]:
    """Intents whose rules/stories answer with action_answer_faq."""
    intents: set[str] = set()
    for path in (ROOT / "nlu_data").rglob("*.yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in (data.get("rules") or []) + (data.get("stories") or []):
            steps = block.get("steps") or []
            for before, after in zip(steps, steps[1:], strict=False):
                if "intent" in before and after.get("action") == "action_answer_faq":
                    intents.add(before["intent"])
    return intents


@pytest.mark.parametrize(("intent", "topic"), sorted(INTENT_TOPICS.items()))
async def test_each_faq_intent_gets_its_own_answer(db_url, domain, dispatcher, intent, topic):
    tracker = make_tracker(domain, text="question", intent=intent)
    assert await ActionAnswerFaq().run(dispatcher, tracker, domain) == []
    answer = one_text(dispatcher)
    assert answer == faq.load_faq()[topic]
    assert answer != faq.GENERIC_ANSWER


def test_every_intent_routed_to_the_faq_has_a_topic(domain):
    routed = faq_intents_in_rules()
    assert routed, "no rule uses action_answer_faq"
    assert routed <= set(INTENT_TOPICS)
    assert set(INTENT_TOPICS) <= set(domain["intents"])


async def test_specific_answers_are_consistent_with_policy(db_url, domain, dispatcher):
    for intent in ("check_refund_policy", "check_cancellation_fee"):
        await ActionAnswerFaq().run(dispatcher, make_tracker(domain, intent=intent), domain)
    refund, cancel = [m["text"] for m in dispatcher.messages]
    assert "30 days of delivery" in refund
    assert "free" in cancel and "hasn't shipped" in cancel


@pytest.mark.parametrize("intent", ["out_of_scope", "made_up_intent", None, ""])
async def test_unknown_intent_gets_the_generic_answer(db_url, domain, dispatcher, intent):
    await ActionAnswerFaq().run(dispatcher, make_tracker(domain, intent=intent), domain)
    assert one_text(dispatcher) == faq.GENERIC_ANSWER


@pytest.mark.parametrize("text", BAD_INPUTS)
async def test_bad_text_still_gets_an_answer(db_url, domain, dispatcher, text):
    await ActionAnswerFaq().run(dispatcher, make_tracker(domain, text=text, intent="delivery_options"), domain)
    assert_polite(one_text(dispatcher))


async def test_an_email_change_request_starts_the_change_not_the_explanation(dispatcher, domain):
    from rasa_sdk.events import FollowupAction

    tracker = make_tracker(domain, text="i want to change my email address", intent="edit_account")
    assert await ActionAnswerFaq().run(dispatcher, tracker, domain) == [FollowupAction("email_change_form")]
    assert dispatcher.messages == []
    other = make_tracker(domain, text="how do i change my account details", intent="edit_account")
    assert await ActionAnswerFaq().run(dispatcher, other, domain) == []
    assert "My account" in one_text(dispatcher)
