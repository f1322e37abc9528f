"""Rasa's WhitespaceTokenizer, with tokens that fingerprint themselves in one hash.

Why: after every node of ``rasa train`` Rasa fingerprints the whole training data for its
training cache, each message's tokens included, and a token's fingerprint
(``Token.fingerprint``) hashes each of its five fields, serialises the hashes to JSON and hashes
that again. On BANKING77 (10,003 examples, about 130,000 tokens, five nodes) that was the
largest part of Rasa's bookkeeping. ``HashedToken`` hashes its fields once; tokens carrying
extra data keep Rasa's fingerprint.

Usage in ``config.yml``: the same keys as Rasa's ``WhitespaceTokenizer``::

    - name: concierge_rasa.nlu.tokenizer.HashedWhitespaceTokenizer
"""

from __future__ import annotations

import hashlib
import json

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData


class HashedToken(Token):
    """A ``Token`` whose fingerprint is one md5 over its fields (Rasa's when it carries data)."""

    def fingerprint(self) -> str:
        """Stable hash of text, start, end and lemma."""
        if self.data:
            return super().fingerprint()
        fields = json.dumps([self.text, self.start, self.end, self.lemma], ensure_ascii=False)
        return hashlib.md5(fields.encode("utf-8"), usedforsecurity=False).hexdigest()


def _hashed_tokens(messages: list[Message]) -> None:
    for message in messages:
        for name in set(TOKENS_NAMES.values()):
            tokens = message.get(name)
            if tokens and not all(type(t) is HashedToken for t in tokens):
                message.set(name, [HashedToken(t.text, t.start, t.end, dict(t.data), t.lemma) for t in tokens])


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class HashedWhitespaceTokenizer(WhitespaceTokenizer):
    """``WhitespaceTokenizer`` whose tokens are ``HashedToken``s (the same texts and offsets)."""

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Tokenizes every training example, as Rasa's tokenizer does."""
        training_data = super().process_training_data(training_data)
        _hashed_tokens(training_data.training_examples)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Tokenizes messages at parse time."""
        messages = super().process(messages)
        _hashed_tokens(messages)
        return messages
