"""HanLookupExtractor: Chinese lookup entries inside Chinese text, where \\b never matches."""

from __future__ import annotations

from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.han_lookup import HanLookupExtractor

TABLES = [
    {"name": "product", "elements": ["耳机", "蓝牙耳机", "headphones"]},
    {"name": "category", "elements": ["数码", "electronics"]},
]


def trained(tmp_path) -> HanLookupExtractor:
    storage = LocalModelStorage(tmp_path)
    extractor = HanLookupExtractor.create({}, storage, Resource("han"), None)
    resource = extractor.train(TrainingData([], lookup_tables=TABLES))
    return HanLookupExtractor.load({}, storage, resource, None)


def test_keeps_only_chinese_entries_and_reloads_them(tmp_path) -> None:
    assert trained(tmp_path).tables == {"product": ["耳机", "蓝牙耳机"], "category": ["数码"]}


def test_finds_the_longest_entry_inside_chinese_text(tmp_path) -> None:
    message = Message({TEXT: "我买的蓝牙耳机坏了，想看看数码类的"})
    trained(tmp_path).process([message])
    found = [(e["entity"], e["value"], e["start"], e["end"]) for e in message.get(ENTITIES)]
    assert found == [("product", "蓝牙耳机", 3, 7), ("category", "数码", 13, 15)]


def test_leaves_english_text_and_taken_stretches_alone(tmp_path) -> None:
    extractor = trained(tmp_path)
    english = Message({TEXT: "my headphones broke"})
    taken = {"entity": "product", "value": "耳机", "start": 2, "end": 4, "extractor": "RegexEntityExtractor"}
    chinese = Message({TEXT: "我的耳机", ENTITIES: [taken]})
    extractor.process([english, chinese])
    assert english.get(ENTITIES, []) == []
    assert chinese.get(ENTITIES) == [taken]
