"""Rasa's WhitespaceTokenizer, with tokens that fingerprint themselves in one hash.

Why: after every node of ``rasa train`` Rasa fingerprints the whole training data for its
training cache, each message's tokens included, and a token's fingerprint
(``Token.fingerprint``) hashes each of its five fields, serialises the hashes to JSON and hashes
that again. On BANKING77 (10,003 examples, about 130,000 tokens, five nodes) that was the
largest part of Rasa's bookkeeping. ``HashedToken`` hashes its fields once; tokens carrying
extra data keep Rasa's fingerprint.

Usage in ``config.yml``: the same keys as Rasa's ``WhitespaceTokenizer``::

    - name: concierge_rasa.nlu.tokenizer.HashedWhitespaceTokenizer

``ScriptTokenizer`` chooses by script: a message with Chinese characters is cut into words by
jieba (Chinese has no spaces between words), any other message exactly as by the whitespace
tokenizer, so English tokens, and what the English model learned, do not change::

    - name: concierge_rasa.nlu.tokenizer.ScriptTokenizer
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.text import HAN


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


_WORDLESS = re.compile(r"^[\W_]+$")
_JIEBA: list[Any] = []
_JIEBA_LOCK = threading.Lock()


def has_han(text: str) -> bool:
    """True when the text holds Chinese characters (the tokenizer and language choice use it)."""
    return bool(HAN.search(text or ""))


def _jieba() -> Any:
    """jieba's default tokenizer, initialised once per process (its dictionary takes about a second)."""
    with _JIEBA_LOCK:
        if not _JIEBA:
            import jieba  # heavy: loads a 5 MB dictionary; only when a Chinese message arrives

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _JIEBA.append(jieba)
        return _JIEBA[0]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class ScriptTokenizer(HashedWhitespaceTokenizer):
    """Whitespace tokens for messages without Chinese; jieba's words (punctuation dropped) for the rest."""

    @staticmethod
    def required_packages() -> list[str]:
        """jieba cuts Chinese text into words."""
        return ["jieba"]

    @staticmethod
    def not_supported_languages() -> None:
        """Every language: Chinese goes to jieba (the whitespace tokenizer refuses zh, ja and th)."""
        return None

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """jieba for Chinese text (Latin words and numbers inside it stay whole), else whitespace."""
        text = message.get(attribute)
        if not has_han(text):
            return super().tokenize(message, attribute)
        tokens = [
            Token(word, start)
            for word, start, _end in _jieba().tokenize(text)
            if word.strip() and not _WORDLESS.match(word)
        ]
        if not tokens:
            tokens = [Token(text, 0)]
        return self._apply_token_pattern(tokens)
