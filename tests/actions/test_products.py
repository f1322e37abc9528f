"""actions/products.py: product questions and recommendations (with bot.services.recommendations)."""

from __future__ import annotations

import json

import pytest

from actions.products import ActionProductQuestion, ActionRecommend, reason_text
from bot.db import models as m
from bot.db.session import session_scope
from bot.services import catalog, faq, recommendations
from bot.services import orders as order_service
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    CARLA,
    assert_polite,
    make_tracker,
    one_text,
    render,
    slot_values,
    token_for,
)


def ent(name: str, value) -> dict:  # noqa: ANN001
    return {"entity": name, "value": value, "start": 0, "end": 1, "extractor": "RegexEntityExtractor"}


# ---------------------------------------------------------------- product questions
@pytest.mark.parametrize(("entity", "query"), [("product", "coffee grinder"), ("category", "cameras")])
async def test_product_question_lists_matches(db_url, domain, dispatcher, entity, query):
    tracker = make_tracker(
        domain, text=f"tell me about {query}", intent="product_question", entities=[ent(entity, query)]
    )
    assert await ActionProductQuestion().run(dispatcher, tracker, domain) == []
    with session_scope() as s:
        expected = catalog.find_products(s, query, 3)
    assert expected
    text = one_text(dispatcher)
    lines = text.splitlines()
    assert lines[0] == "Here's what I found:"
    assert len(lines) == 1 + len(expected)
    for line, p in zip(lines[1:], expected, strict=True):
        stock = "in stock" if p.stock > 0 else "currently out of stock"
        assert line == f"- {p.name} ({p.category}), ${p.price:,.2f}, {stock}: {p.description}"


async def test_product_entity_wins_over_category(db_url, domain, dispatcher):
    tracker = make_tracker(domain, entities=[ent("category", "cameras"), ent("product", "tripod")])
    await ActionProductQuestion().run(dispatcher, tracker, domain)
    assert all("Tripod" in line for line in one_text(dispatcher).splitlines()[1:])


@pytest.mark.parametrize(
    "entities",
    [[], [ent("product", "unicorn saddle")], [ent("product", 42)], [ent("product", "%")], [ent("category", "_")]],
)
async def test_product_question_without_a_match_gets_the_faq_answer(db_url, domain, dispatcher, entities):
    tracker = make_tracker(domain, text="a product question", intent="product_question", entities=entities)
    await ActionProductQuestion().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == faq.answer("product_question")


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_product_question_bad_entity_is_polite(db_url, domain, dispatcher, value):
    tracker = make_tracker(domain, text=value, entities=[ent("product", value)])
    await ActionProductQuestion().run(dispatcher, tracker, domain)
    assert_polite(one_text(dispatcher))


# ---------------------------------------------------------------- recommendations
@pytest.fixture
def rec_service():  # noqa: ANN201
    """The recommendation service, imported: if it breaks, these tests fail (they used to skip)."""
    return recommendations


def rec_lines(dispatcher) -> tuple[str, list[str], list[dict]]:  # noqa: ANN001
    (msg,) = dispatcher.messages
    lines = msg["text"].splitlines()
    return lines[0], lines[1:], msg.get("buttons") or []


def check_buttons(lines: list[str], buttons: list[dict]) -> None:
    assert len(buttons) == len(lines)
    for line, button in zip(lines, buttons, strict=True):
        assert button["payload"].startswith("/product_question{")
        product = json.loads(button["payload"].removeprefix("/product_question"))["product"]
        assert line.startswith(f"- {product}")
        assert button["title"].startswith(product)


async def test_recommend_in_a_category_for_a_customer(rec_service, db_url, domain, dispatcher):
    tracker = make_tracker(
        domain,
        text="recommend some coffee",
        intent="recommend_products",
        entities=[ent("category", "coffee")],
        token=token_for(ALICE),
    )
    events = await ActionRecommend().run(dispatcher, tracker, domain)
    with session_scope() as s:
        bought = catalog.purchased_product_ids(s, ALICE)
        consumable = {pid for pid in bought if s.get(m.Product, pid).consumable}
        expected = [p for p in catalog.best_sellers(s, "coffee", 50, bought - consumable) if p.stock > 0][:5]
    intro, lines, buttons = rec_lines(dispatcher)
    assert intro == "Here are a few things you might like:"
    assert lines == [f"- {p.name}, ${p.price:,.2f} (popular in coffee)" for p in expected]
    assert 3 <= len(lines) <= 5
    assert all(p.category == "coffee" for p in expected)
    assert not {p.id for p in expected} & (bought - consumable)  # re-buying consumables is fine
    check_buttons(lines, buttons)
    assert slot_values(events)["verified_customer_id"] == str(ALICE)


async def test_recommend_anonymous_popular_picks(rec_service, db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="what do you recommend?", intent="recommend_products")
    assert await ActionRecommend().run(dispatcher, tracker, domain) == []
    intro, lines, buttons = rec_lines(dispatcher)
    assert intro == "Here are some popular picks:"
    assert 3 <= len(lines) <= 5
    assert len(set(lines)) == len(lines)
    assert all("$" in line and line.endswith(")") for line in lines)  # price and a reason
    check_buttons(lines, buttons)


async def test_recommend_similar_to_a_product(rec_service, db_url, domain, dispatcher):
    tracker = make_tracker(
        domain,
        text="something like the Lumora X1 Mirrorless Camera",
        intent="recommend_products",
        entities=[ent("product", "Lumora X1 Mirrorless Camera")],
    )
    await ActionRecommend().run(dispatcher, tracker, domain)
    _, lines, buttons = rec_lines(dispatcher)
    assert 3 <= len(lines) <= 5
    assert not any(line.startswith("- Lumora X1 Mirrorless Camera,") for line in lines)
    check_buttons(lines, buttons)


async def test_recommend_for_last_order(rec_service, db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, text="what goes with my last order?", intent="recommend_products", token=token_for(CARLA)
    )
    await ActionRecommend().run(dispatcher, tracker, domain)
    with session_scope() as s:
        last = order_service.recent_orders(s, CARLA, 1)[0]
    intro, lines, buttons = rec_lines(dispatcher)
    assert intro == "Here are a few things you might like:"
    assert 3 <= len(lines) <= 5
    assert not any(line.startswith(f"- {item.name},") for item in last.items for line in lines)
    check_buttons(lines, buttons)


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_recommend_bad_input_is_polite(rec_service, db_url, domain, dispatcher, value):
    tracker = make_tracker(
        domain, text=value, intent="recommend_products", entities=[ent("product", value), ent("category", value)]
    )
    await ActionRecommend().run(dispatcher, tracker, domain)
    assert_polite(render(dispatcher.messages[0]))
    assert len(dispatcher.messages) == 1


async def test_recommend_in_the_website_widget_sends_product_cards(rec_service, db_url, domain, dispatcher):
    """Over socket.io (rasa-webchat) the products come as a carousel linking to the shop."""
    from bot.settings import get_settings

    tracker = make_tracker(
        domain, text="recommend some coffee", intent="recommend_products", entities=[ent("category", "coffee")]
    )
    next(e for e in reversed(tracker.events) if e["event"] == "user")["input_channel"] = "socketio"
    await ActionRecommend().run(dispatcher, tracker, domain)
    intro, cards = dispatcher.messages
    assert intro["text"] == "Here are some popular picks:" and not intro.get("buttons")
    payload = cards["attachment"]["payload"]
    assert cards["attachment"]["type"] == "template" and payload["template_type"] == "generic"
    with session_scope() as s:
        expected = rec_service.popular_in_category(s, "coffee", None, 5)
    assert 3 <= len(payload["elements"]) == len(expected) <= 5
    shop = get_settings().shop_url
    for card, rec in zip(payload["elements"], expected, strict=True):
        assert card["title"] == rec.name
        assert card["subtitle"] == f"${rec.price:,.2f} · {rec.reason}"
        assert card["image_url"] == f"{shop}/images/products/{rec.product_id}.svg"
        view, more = card["buttons"]
        assert view == {"type": "web_url", "url": f"{shop}/products/{rec.product_id}", "title": "View product"}
        assert card["default_action"] == {"type": "web_url", "url": view["url"]}
        assert more["type"] == "postback" and more["payload"].startswith("/product_question{")


async def test_product_cards_in_chinese(rec_service, db_url, domain, dispatcher):
    """Price, reason and buttons of each card in Chinese; the product names stay as the catalogue writes them."""
    tracker = make_tracker(domain, text="推荐点咖啡", intent="recommend_products",
                           entities=[ent("category", "coffee")], slots={"language": "zh"})
    next(e for e in reversed(tracker.events) if e["event"] == "user")["input_channel"] = "socketio"
    await ActionRecommend().run(dispatcher, tracker, domain)
    intro, cards = dispatcher.messages
    assert intro["text"] == "这些是大家常买的热门好物："
    for card in cards["attachment"]["payload"]["elements"]:
        price, reason = card["subtitle"].split(" · ")
        assert price.endswith("美元") and "$" not in price
        assert reason == "咖啡热销"  # popular in coffee
        assert [b["title"] for b in card["buttons"]] == ["查看商品", "详细介绍"]


@pytest.mark.parametrize(
    ("reason", "chinese"),
    [("because you bought Aero Press", "您买过Aero Press，配着用正好"),
     ("similar to Aero Press", "和Aero Press是同类好物"),
     ("popular in smart home", "智能家居热销"), ("popular in garden", "garden热销"),
     ("popular with loyal big spenders", "和您口味相近的顾客都在买"), ("popular right now", "近期热销"),
     ("something new", "something new")],
)
def test_recommendation_reasons_in_chinese(domain, reason, chinese):
    assert reason_text(reason, domain, "zh") == chinese
    assert reason_text(reason, domain, "en") == reason
