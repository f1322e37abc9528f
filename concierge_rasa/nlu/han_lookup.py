"""Lookup-table entities inside Chinese text, where word boundaries do not exist.

Why: Rasa's ``RegexEntityExtractor`` puts ``\\b`` around every lookup entry, and Chinese
characters are word characters, so 「耳机」 is never found in 「我买的耳机坏了」. This component
takes the lookup entries written in Chinese (``nlu_data/nlu/zh_lookup.yml``) and finds them in
messages with Chinese characters, longest entry first, without overlaps. EntitySynonymMapper,
later in the pipeline, turns 「耳机」 into the catalog's value ``headphones``.

Usage in ``config.yml``, beside the other extractors and before the entity resolver::

    - name: concierge_rasa.nlu.han_lookup.HanLookupExtractor
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.tokenizer import has_han

TABLES_FILE = "han_lookup.json"


def compile_tables(tables: dict[str, list[str]]) -> Optional[re.Pattern[str]]:
    """One alternation, longest entry first, each entry a named group's member by entity."""
    entries = sorted({(e, name) for name, items in tables.items() for e in items}, key=lambda x: -len(x[0]))
    if not entries:
        return None
    return re.compile("|".join(re.escape(e) for e, _ in entries), re.IGNORECASE)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class HanLookupExtractor(EntityExtractorMixin, GraphComponent):
    """Finds Chinese lookup entries in Chinese messages."""

    def __init__(self, model_storage: ModelStorage, resource: Resource, tables: dict[str, list[str]]) -> None:
        self._model_storage = model_storage
        self._resource = resource
        self.tables = tables
        self._owner = {e.lower(): name for name, items in tables.items() for e in items}
        self._pattern = compile_tables(tables)

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> HanLookupExtractor:
        """Empty until trained."""
        return cls(model_storage, resource, {})

    @classmethod
    def load(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext, **kwargs: Any,
    ) -> HanLookupExtractor:
        """The tables kept at training."""
        try:
            with model_storage.read_from(resource) as model_dir:
                tables = json.loads((model_dir / TABLES_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError, OSError):
            tables = {}
        return cls(model_storage, resource, tables)

    def train(self, training_data: TrainingData) -> Resource:
        """Keeps the lookup entries that hold Chinese characters, by entity."""
        tables: dict[str, list[str]] = {}
        for table in training_data.lookup_tables:
            elements = table.get("elements")
            if isinstance(elements, list):
                han = [str(e) for e in elements if has_han(str(e))]
                if han:
                    tables.setdefault(str(table["name"]), []).extend(han)
        self.tables = {k: sorted(set(v)) for k, v in tables.items()}
        with self._model_storage.write_to(self._resource) as model_dir:
            (model_dir / TABLES_FILE).write_text(json.dumps(self.tables, ensure_ascii=False), encoding="utf-8")
        self._owner = {e.lower(): name for name, items in self.tables.items() for e in items}
        self._pattern = compile_tables(self.tables)
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds the entries found, unless an extractor already covers that stretch."""
        if self._pattern is None:
            return messages
        for message in messages:
            text = str(message.get(TEXT) or "")
            if not has_han(text):
                continue
            entities = list(message.get(ENTITIES, []))
            taken = [(int(e.get("start", 0)), int(e.get("end", 0))) for e in entities]
            for match in self._pattern.finditer(text):
                start, end = match.span()
                if any(start < b and a < end for a, b in taken):
                    continue
                entities.append({
                    "entity": self._owner[match.group().lower()], "value": match.group(),
                    "start": start, "end": end, "extractor": type(self).__name__,
                })
                taken.append((start, end))
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
