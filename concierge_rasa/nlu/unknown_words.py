"""Sends gibberish to fallback: a message made mostly of words never seen in training.

Why: a sentence encoder maps any string to some point in space, and a classifier then picks
the nearest intent with confidence, so "blorp fnargle wibble" looked like a short answer.
Words the assistant has never seen carry no evidence; when most of a message consists of
them (and no entity was found), the top intent's confidence is set to 0 and the
FallbackClassifier that follows asks the customer to rephrase. Typos survive, because
the common words around them ("is", "my") are known.

Usage in config.yml, after the intent classifier and before FallbackClassifier::

    - name: concierge_rasa.nlu.unknown_words.UnknownWordsGate
      min_known_ratio: 0.34
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.text import HAN

logger = logging.getLogger(__name__)
VOCAB_FILE = "vocabulary.json"
WORD = re.compile(r"[^\W\d_]+")


def words(text: str) -> list[str]:
    """Letter runs; Chinese, written without spaces, counts each character as a word."""
    out: list[str] = []
    for word in WORD.findall((text or "").lower()):
        out.extend(HAN.findall(word) + HAN.sub(" ", word).split() if HAN.search(word) else [word])
    return out


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class UnknownWordsGate(IntentClassifier, GraphComponent):
    """Zeroes the intent confidence of messages made mostly of unknown words."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"min_known_ratio": 0.34, "min_words": 2}

    def __init__(
        self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        vocabulary: Optional[set[str]] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.vocabulary = vocabulary or set()

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> UnknownWordsGate:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """The vocabulary: every word of the training examples and lookup tables."""
        vocab: set[str] = set()
        for example in training_data.training_examples:
            vocab.update(words(example.get(TEXT) or ""))
        for table in training_data.lookup_tables:
            for element in table.get("elements") or []:
                vocab.update(words(str(element)))
        self.vocabulary = vocab
        with self._model_storage.write_to(self._resource) as model_dir:
            (model_dir / VOCAB_FILE).write_text(json.dumps(sorted(vocab)))
        return self._resource

    @classmethod
    def load(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext, **kwargs: Any,
    ) -> UnknownWordsGate:
        try:
            with model_storage.read_from(resource) as model_dir:
                vocab = set(json.loads((model_dir / VOCAB_FILE).read_text()))
        except (ValueError, FileNotFoundError, OSError):
            logger.debug("No vocabulary for '%s'; the gate lets everything through.", resource.name)
            vocab = set()
        return cls(config, model_storage, resource, vocab)

    def known_ratio(self, text: str) -> Optional[float]:
        """Share of the message's words seen in training (None when too short to judge)."""
        tokens = words(text)
        if len(tokens) < int(self.config["min_words"]):
            return None
        return sum(t in self.vocabulary for t in tokens) / len(tokens)

    def process(self, messages: list[Message]) -> list[Message]:
        if not self.vocabulary:
            return messages
        for message in messages:
            intent = message.get(INTENT)
            if not intent or message.get(ENTITIES):
                continue
            ratio = self.known_ratio(message.get(TEXT) or "")
            if ratio is not None and ratio < float(self.config["min_known_ratio"]):
                message.set(INTENT, {**intent, "confidence": 0.0}, add_to_output=True)
                ranking = message.get(INTENT_RANKING_KEY) or []
                if ranking:
                    ranking = [{**ranking[0], "confidence": 0.0}, *ranking[1:]]
                    message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
