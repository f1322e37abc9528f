"""LanguageDetector: the language entity that selects each response's variation."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from concierge_rasa.nlu.language import LanguageDetector, detect, language_tag, written_language


@pytest.mark.parametrize(
    ("text", "metadata", "expected"),
    [
        ("我的订单190003到哪了？", None, "zh"),
        ("order 190003 到哪了", None, "zh"),              # mixed: the Chinese decides
        ("退款", {"language": "en"}, "zh"),                # Chinese typed on an English page
        ("where is my order please", None, None),         # English is the default: nothing to set
        ("where is my order please", {"language": "en"}, "en"),
        ("where is my order please", {"language": "zh-CN"}, "zh"),  # the page's choice outranks Latin
        ("190003", {"language": "en"}, None),             # no words: the conversation's language stays
        ("alice.martin@example.com", {"language": "en"}, None),
        ("ok", {"language": "zh"}, "zh"),                 # words: the page's language
        ("190003", None, None),                           # nothing at all: the slot stays
        ("ok thx", None, None),                           # too short to switch a Chinese chat
        ("Lumora One Tripod", None, None),                # a product button's payload
        ("carla@example.com", {"language": "fr"}, None),  # a language the shop doesn't speak
        ("", {"language": 7}, None),
    ],
)
def test_detect(text, metadata, expected) -> None:
    assert detect(text, metadata) == expected


def test_language_tags() -> None:
    assert [language_tag(v) for v in ("zh", "zh-CN", "zh_Hans", "EN-gb", "de", None, "")] == [
        "zh", "zh", "zh", "en", None, None, None]


def test_adds_one_language_entity_after_the_others() -> None:
    order = {"entity": "order_number", "value": "190003", "start": 4, "end": 10}
    message = Message({TEXT: "我的订单190003到哪了", ENTITIES: [order], "metadata": {"language": "en"}})
    silent = Message({TEXT: "190003", "metadata": {}})
    LanguageDetector().process([message, silent])
    assert message.get(ENTITIES) == [
        order, {"entity": "language", "value": "zh", "start": 0, "end": 0, "extractor": "LanguageDetector"}]
    assert silent.get(ENTITIES, []) == []


def test_written_language_needs_a_clear_script() -> None:
    assert written_language("我的订单呢") == "zh"
    assert written_language("where is my order please") == "en"
    assert [written_language(t) for t in ("ok thx", "Lumora One Tripod", "my email: a@b.example.com", "190003",
                                          '/greet{"language": "en"} one two three four', "")] == [None] * 6
