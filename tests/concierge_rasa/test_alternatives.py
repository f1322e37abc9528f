"""concierge_rasa/nlu/alternatives.py: two tasks named as alternatives go to the clarification."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from concierge_rasa.nlu.alternatives import AlternativesGate


def ranked(text: str, *pairs: tuple[str, float]) -> Message:
    ranking = [{"name": n, "confidence": c} for n, c in pairs]
    return Message(data={TEXT: text, INTENT: dict(ranking[0]), INTENT_RANKING_KEY: ranking})


@pytest.mark.parametrize(("message", "asked"), [
    (ranked("cancel or return 190002 whatever is easier", ("cancel_order", 0.37), ("return_item", 0.2)), True),
    (ranked("track it or cancel it", ("track_order", 0.6), ("cancel_order", 0.3)), True),
    (ranked("这个单是取消还是退货", ("cancel_order", 0.5), ("return_item", 0.3)), True),
    (ranked("refund or return?", ("get_refund", 0.5), ("return_item", 0.4)), False),  # one flow
    (ranked("do you take card or paypal", ("check_payment_methods", 0.8), ("payment_issue", 0.1)), False),
    (ranked("cancel 190002 and return 190003", ("cancel_order", 0.5), ("return_item", 0.4)), False),  # no "or"
    (ranked("cancel or whatever", ("cancel_order", 0.9), ("return_item", 0.05)), False),  # the other is no option
])
def test_alternatives_are_sent_to_the_clarification(message: Message, asked: bool) -> None:
    before = message.get(INTENT)["confidence"]
    AlternativesGate({}).process([message])
    assert message.get(INTENT)["confidence"] == (0.0 if asked else before)
    assert message.get(INTENT_RANKING_KEY)[0]["confidence"] > 0  # the ranking keeps what to offer
