"""Resolves overlapping entities and lookup hits inside everyday phrases.

Why: ``RegexEntityExtractor`` runs each lookup table on its own, so "coffee maker" yields
both a product ("coffee maker") and a category ("coffee"), and "phone number" yields the
product "phone". The customer meant one thing; a form that receives both asks the wrong
question. This component, placed after the extractors, keeps for each stretch of text the
longest entity (ties: the type listed first in ``priority``) and drops hits that are part of
a phrase in ``ignore_phrases`` ("phone number", "home address", ...).

Usage in ``config.yml`` (after the entity extractors, before EntitySynonymMapper)::

    - name: concierge_rasa.nlu.entity_resolver.OverlappingEntityResolver
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

DEFAULT_IGNORE = [
    "phone number",
    "phone numbers",
    "phone no",
    "mobile number",
    "home address",
    "home page",
    "homepage",
    "office hours",
    "office address",
    "home delivery",
    "mouse pad",
    "computer says",
    "by a computer",
    "help desk",
    # places, not the office-supplies or home categories
    "my office",
    "the office",
    "at home",
    "my home",
    "of home",
    # the verb, not a product
    "book a",
    "book an",
    "book me",
    # Chinese: a phone number, a payment wallet (HanLookupExtractor finds 手机 and 钱包 inside them)
    "手机号",
    "手机号码",
    "支付宝钱包",
    "微信钱包",
]


def _bounded(phrase: str) -> str:
    """The phrase as a regex, ``\\b`` only beside Latin letters and digits (Chinese has no word boundaries)."""
    left = r"\b" if phrase[:1].isascii() and phrase[:1].isalnum() else ""
    right = r"\b" if phrase[-1:].isascii() and phrase[-1:].isalnum() else ""
    return left + re.escape(phrase) + right


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class OverlappingEntityResolver(GraphComponent):
    """One entity per stretch of text; no lookup hits inside everyday phrases."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults; every key can be set in config.yml."""
        return {
            # on equal spans, the type listed first wins
            "priority": ["order_number", "email", "amount", "product", "category"],
            # entity types that a phrase below may swallow (order numbers and emails never)
            "ignorable": ["product", "category"],
            "ignore_phrases": DEFAULT_IGNORE,
        }

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**self.get_default_config(), **config}
        phrases = sorted({p.lower() for p in self.config["ignore_phrases"] or []}, key=len, reverse=True)
        self._ignore = re.compile("|".join(map(_bounded, phrases)), re.I) if phrases else None
        self._rank = {name: i for i, name in enumerate(self.config["priority"] or [])}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> OverlappingEntityResolver:
        """Nothing to train: the rules are in the config."""
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training data keeps its annotations untouched."""
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Filters each message's entities in place."""
        for message in messages:
            entities = message.get(ENTITIES) or []
            if entities:
                message.set(ENTITIES, self.resolve(str(message.get(TEXT) or ""), entities), add_to_output=True)
        return messages

    def resolve(self, text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entities to keep, in text order."""
        ignorable = set(self.config["ignorable"] or [])
        blocked = [m.span() for m in self._ignore.finditer(text)] if self._ignore else []

        def inside_blocked(e: dict[str, Any]) -> bool:
            return e.get("entity") in ignorable and any(s <= e["start"] and e["end"] <= t for s, t in blocked)

        spans = [e for e in entities if isinstance(e.get("start"), int) and isinstance(e.get("end"), int)]
        others = [e for e in entities if e not in spans]
        spans = [e for e in spans if not inside_blocked(e)]
        ranked = sorted(
            spans,
            key=lambda e: (-(e["end"] - e["start"]), self._rank.get(e.get("entity"), len(self._rank)), e["start"]),
        )
        kept: list[dict[str, Any]] = []
        for e in ranked:
            if all(e["end"] <= k["start"] or e["start"] >= k["end"] for k in kept):
                kept.append(e)
        return sorted(kept, key=lambda e: e["start"]) + others
