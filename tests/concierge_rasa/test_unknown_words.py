"""UnknownWordsGate: gibberish goes to fallback, typos and entity-bearing answers do not."""

from __future__ import annotations

from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.unknown_words import UnknownWordsGate


def gate(tmp_path, vocabulary=None) -> UnknownWordsGate:
    storage = LocalModelStorage(tmp_path)
    return UnknownWordsGate({}, storage, Resource("gate"), vocabulary)


def classified(text: str, entities=None) -> Message:
    msg = Message({TEXT: text})
    msg.set(INTENT, {"name": "inform", "confidence": 0.9})
    msg.set(INTENT_RANKING_KEY, [{"name": "inform", "confidence": 0.9}, {"name": "greet", "confidence": 0.1}])
    msg.set(ENTITIES, entities or [])
    return msg


def test_trains_a_vocabulary_and_reloads_it(tmp_path) -> None:
    g = gate(tmp_path)
    data = TrainingData([Message({TEXT: "where is my order", INTENT: "track_order"})],
                        lookup_tables=[{"name": "product", "elements": ["coffee grinder"]}])
    resource = g.train(data)
    loaded = UnknownWordsGate.load({}, g._model_storage, resource, None)
    assert {"where", "is", "my", "order", "coffee", "grinder"} <= loaded.vocabulary


def test_gibberish_loses_its_confidence(tmp_path) -> None:
    g = gate(tmp_path, {"where", "is", "my", "order"})
    msg = g.process([classified("blorp fnargle wibble")])[0]
    assert msg.get(INTENT)["confidence"] == 0.0
    assert msg.get(INTENT_RANKING_KEY)[0]["confidence"] == 0.0


def test_typos_short_answers_and_entities_pass(tmp_path) -> None:
    g = gate(tmp_path, {"where", "is", "my", "order", "the"})
    for msg in (classified("whre is my ordr"), classified("tripod"), classified("the tripod"),
                classified("xq zzv", entities=[{"entity": "email", "value": "a@b.co"}])):
        assert g.process([msg])[0].get(INTENT)["confidence"] == 0.9, msg.get(TEXT)


def test_untrained_gate_lets_everything_through(tmp_path) -> None:
    msg = gate(tmp_path).process([classified("blorp fnargle")])[0]
    assert msg.get(INTENT)["confidence"] == 0.9


def test_chinese_counts_characters_as_words(tmp_path) -> None:
    g = gate(tmp_path)
    g.train(TrainingData([Message({TEXT: "我的订单到哪了", INTENT: "track_order"})]))
    assert g.known_ratio("我的订单190003呢") == 0.8  # 我 的 订 单 known, 呢 not
    msg = g.process([classified("嘎嘣脆咕噜噜")])[0]  # characters never seen: gibberish to the gate
    assert msg.get(INTENT)["confidence"] == 0.0
