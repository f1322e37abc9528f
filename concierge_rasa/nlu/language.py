"""Which language a message is in: an entity ``language`` (en or zh) the ``language`` slot takes.

Why: the domain's responses have a Chinese variation chosen on the ``language`` slot (Rasa's
conditional response variations), and a slot mapped from an entity is set before any action of
the turn runs, with no extra call to the action server. Chinese characters make a message
Chinese; otherwise the widget's ``language`` metadata decides, else a message of several English
words is English, else the slot stays as it was. The entity is declared with ``influence_conversation: false``
in the domain, so it changes no prediction; it is added last in the pipeline, after the gates
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
#: Latin words of two letters or more; at least this many make a message English where the page says
#: nothing (a product name from a button, "ok thx" or "190003 pls" switch nothing)
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
MIN_LATIN_WORDS = 4
#: what is written the same in every language: an email address ("alice.martin@example.com" is no English)
_NEUTRAL = re.compile(r"\S+@\S+|https?://\S+")


def language_tag(value: Any) -> Optional[str]:
    """``zh``, ``zh-CN``, ``zh_Hans`` -> zh; ``en-GB`` -> en; anything else None."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGUAGES else None


def detect(text: str, metadata: Any = None) -> Optional[str]:
    """The message's language: Chinese script, else the page's language, else a long Latin message.

    The page's language (the widget's ``language`` metadata, the shop's 中文 switch) outranks Latin
    script, so tapping a button whose payload is an English product name keeps a Chinese
    conversation Chinese; Chinese characters always win, wherever they are typed.
    """
    if has_han(text):
        return "zh"
    page = language_tag(metadata.get("language")) if isinstance(metadata, dict) else None
    if page is not None:
        return page
    if len(_LATIN_WORD.findall(_NEUTRAL.sub(" ", text or ""))) >= MIN_LATIN_WORDS:
        return "en"
    return None


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
