"""OverlappingEntityResolver: one entity per stretch of text, none inside everyday phrases."""

from __future__ import annotations

from rasa.shared.nlu.training_data.message import Message

from concierge_rasa.nlu.entity_resolver import OverlappingEntityResolver


def _ent(text: str, value: str, entity: str, start: int = 0) -> dict:
    begin = text.index(value, start)
    return {"entity": entity, "start": begin, "end": begin + len(value), "value": value, "extractor": "test"}


def _resolve(text: str, entities: list[dict], **config) -> list[tuple[str, str]]:
    resolver = OverlappingEntityResolver({**OverlappingEntityResolver.get_default_config(), **config})
    message = Message(data={"text": text, "entities": entities})
    resolver.process([message])
    return [(e["entity"], e["value"]) for e in message.get("entities")]


def test_the_longest_entity_wins_an_overlap() -> None:
    text = "my coffee maker from order 123456 leaks"
    found = _resolve(text, [_ent(text, "coffee", "category"), _ent(text, "coffee maker", "product"),
                            _ent(text, "123456", "order_number")])
    assert found == [("product", "coffee maker"), ("order_number", "123456")]


def test_equal_spans_follow_the_priority_and_duplicates_collapse() -> None:
    text = "the phone case"
    found = _resolve(text, [_ent(text, "phone case", "category"), _ent(text, "phone case", "product"),
                            _ent(text, "phone case", "product")])
    assert found == [("product", "phone case")]


def test_lookup_hits_inside_everyday_phrases_are_dropped() -> None:
    text = "I need to change my phone number and deliver to my office"
    found = _resolve(text, [_ent(text, "phone", "product"), _ent(text, "office", "category")])
    assert found == []
    text = "I want a new phone for my office"
    assert _resolve(text, [_ent(text, "phone", "product")]) == [("product", "phone")]


def test_order_numbers_and_emails_are_never_swallowed() -> None:
    text = "book a 123456"
    found = _resolve(text, [_ent(text, "123456", "order_number")], ignore_phrases=["book a 123456"])
    assert found == [("order_number", "123456")]


def test_messages_without_entities_or_spans_are_left_alone() -> None:
    assert _resolve("hello", []) == []
    odd = {"entity": "product", "value": "x"}  # no span: kept as it is
    assert _resolve("x", [odd]) == [("product", "x")]


def test_chinese_phrases_drop_lookup_hits_without_word_boundaries() -> None:
    text = "我想改一下手机号，顺便问问手机壳"
    found = _resolve(text, [_ent(text, "手机", "product"), _ent(text, "手机壳", "product")])
    assert found == [("product", "手机壳")]  # 手机 inside 手机号 is a phone number, not a product
    text = "新手机到了吗"
    assert _resolve(text, [_ent(text, "手机", "product")]) == [("product", "手机")]
