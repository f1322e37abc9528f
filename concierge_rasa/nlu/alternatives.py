"""Sends a message that names two tasks as alternatives to the clarification question.

Why: "cancel or return 190002, whatever is easier" asks the shop to choose; the classifier still
leans to one of them, often just above the fallback threshold, and the bot then started a
cancellation nobody chose. When the message says "or" and the classifier's two likeliest intents
are tasks of different flows, the top confidence is set to 0, so the FallbackClassifier that follows
sends it to the fallback action, which asks "Do you want to cancel an order or return an item?"
with a button each (``actions/support.py``). Whether it asks never depends on how close the two
scores are, which changes with every retraining.

Usage in config.yml, after the intent classifier and before FallbackClassifier::

    - name: concierge_rasa.nlu.alternatives.AlternativesGate
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from concierge_rasa.multi_request import FLOWS

ALTERNATIVE = re.compile(r"\b(?:or|either)\b|还是|或者", re.I)
#: the tasks a customer may name as alternatives (one order, one thing to do with it)
TASKS = frozenset({
    "track_order", "cancel_order", "change_order", "change_shipping_address", "get_refund", "return_item",
    "track_refund", "get_invoice", "check_invoice",
})


def names_alternatives(text: str, ranking: list[dict[str, Any]], min_second: float) -> bool:
    """Whether ``text`` says "or" and its two likeliest intents are tasks of different flows."""
    if not ALTERNATIVE.search(text or "") or len(ranking) < 2:
        return False
    first, second = ranking[0], ranking[1]
    names = (first.get("name"), second.get("name"))
    return (
        all(name in TASKS for name in names)
        and FLOWS.get(str(names[0])) != FLOWS.get(str(names[1]))
        and float(second.get("confidence") or 0.0) >= min_second
    )


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class AlternativesGate(IntentClassifier, GraphComponent):
    """Zeroes the intent confidence of a message that names two tasks as alternatives."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"min_second": 0.1}

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> AlternativesGate:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get(INTENT)
            ranking = message.get(INTENT_RANKING_KEY) or []
            if intent and names_alternatives(message.get(TEXT) or "", ranking, float(self.config["min_second"])):
                message.set(INTENT, {**intent, "confidence": 0.0}, add_to_output=True)
        return messages
