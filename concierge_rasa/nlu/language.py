"""Which language a message is in: an entity ``language`` (en or zh) the ``language`` slot takes.

Why: the domain's responses have a Chinese variation chosen on the ``language`` slot (Rasa's
conditional response variations), and a slot mapped from an entity is set before any action of
the turn runs, with no extra call to the action server. Chinese characters make a message
Chinese; otherwise the widget's ``language`` metadata decides (the shop's 中文 / English switch),
else the slot stays as it was. English script alone sets nothing: English is the default, and a
Chinese conversation is not switched by a product name, an email or "ok" (nor do Rasa's test
stories, written in English without metadata, see an entity they do not expect). The entity is
declared with ``influence_conversation: false`` in the domain, so it changes no prediction; it is
added last in the pipeline, after the gates
that look at entities.

Usage in ``config.yml``, last::

    - name: concierge_rasa.nlu.language.LanguageDetector
"""

from __future__ import annotations

import re
from typing import Any, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from concierge_rasa.nlu.tokenizer import has_han

ENTITY = "language"
LANGUAGES = ("en", "zh")
#: a word in Latin letters, once emails and links (written the same in every language) are left out
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_NEUTRAL = re.compile(r"\S+@\S+|https?://\S+")


def language_tag(value: Any) -> Optional[str]:
    """``zh``, ``zh-CN``, ``zh_Hans`` -> zh; ``en-GB`` -> en; anything else None."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGUAGES else None


#: English words in a message before a channel whose client names no language calls it English
MIN_ENGLISH_WORDS = 4


def latin_words(text: str) -> list[str]:
    """The words in Latin letters a message holds, emails and links (the same in every language) left out."""
    return _LATIN_WORD.findall(_NEUTRAL.sub(" ", text or ""))


def written_language(text: str) -> Optional[str]:
    """The language a message is written in, when its script says so clearly: Chinese characters, or
    several English words (emails and links left out); None for an order number, "ok", a product name.

    The channels (``concierge_rasa.channels.guard``) put it in the metadata when the client named no
    language (REST, the messaging platforms), so a customer there who wrote Chinese can switch back by
    writing English."""
    if has_han(text):
        return "zh"
    if text.lstrip().startswith("/"):
        return None  # a button's payload ("/greet", "/inform{...}"), not something written
    return "en" if len(latin_words(text)) >= MIN_ENGLISH_WORDS else None


def detect(text: str, metadata: Any = None) -> Optional[str]:
    """The message's language: Chinese script, else the page's language, else None (no change).

    Chinese characters win wherever they are typed; the page's language (the widget's ``language``
    metadata) decides messages in Latin letters, so tapping a button whose payload is an English
    product name keeps a Chinese page's conversation Chinese. A message without words (an order
    number, an email) changes nothing.
    """
    if has_han(text):
        return "zh"
    if not latin_words(text):
        return None
    return language_tag(metadata.get("language")) if isinstance(metadata, dict) else None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class LanguageDetector(GraphComponent):
    """Adds the entity ``language`` to messages whose language is known."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetector:
        """Nothing to train or configure."""
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        """One ``language`` entity per message, unless it gives no clue."""
        for message in messages:
            text = str(message.get(TEXT) or "")
            found = detect(text, message.get("metadata"))
            if found is None:
                continue
            entities = [e for e in message.get(ENTITIES, []) if e.get("entity") != ENTITY]
            entities.append(
                {"entity": ENTITY, "value": found, "start": 0, "end": 0, "extractor": type(self).__name__}
            )
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
