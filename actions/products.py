"""Products: questions about the catalogue and recommendations."""

from __future__ import annotations

import json
import re

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import SafeAction, in_transaction, latest_text, resolve_identity
from actions.replies import language, render
from bot.services import catalog, faq
from bot.services import orders as order_service
from bot.services import recommendations as rec_service  # models load on first use, not at import
from bot.services.types import format_money
from bot.settings import get_settings

# Channels whose widget renders a carousel of product cards (rasa-webchat over socket.io).
CARD_CHANNELS = frozenset({"socketio"})
LAST_ORDER_RE = re.compile(r"\b(last|previous|recent) (order|purchase)\b|\bi (just )?(bought|ordered)\b", re.I)


def _entity(tracker: Tracker, name: str) -> str | None:
    for ent in (tracker.latest_message or {}).get("entities") or []:
        if ent.get("entity") == name and isinstance(ent.get("value"), str):
            return ent["value"][:100]
    return None


class ActionProductQuestion(SafeAction):
    def name(self) -> str:
        return "action_product_question"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        query = _entity(tracker, "product") or _entity(tracker, "category")
        products = await in_transaction(catalog.find_products, query, 3) if query else []
        if not products:
            dispatcher.utter_message(text=faq.answer("product_question", language(tracker)))
            return []
        lang = language(tracker)
        lines = []
        for p in products:
            stock = render(domain, "utter_in_stock" if p.stock > 0 else "utter_out_of_stock", lang)
            category = category_name(p.category, domain, lang)
            lines.append(f"- {p.name} ({category}), {format_money(p.price, lang)}, {stock}: {p.description}")
        dispatcher.utter_message(response="utter_products_found", lines="\n".join(lines))
        return []


def category_name(category: str, domain: DomainDict, lang: str) -> str:
    """The catalogue's category as the customer's language names it (``utter_category_<name>``)."""
    return render(domain, "utter_category_" + category.replace(" ", "_"), lang) or category


# the recommender's reasons (bot/ml/recommender.py, bot/services/recommendations.py) -> their responses
_REASONS = (
    (re.compile(r"because you bought (?P<product>.+)"), "utter_reason_bought"),
    (re.compile(r"similar to (?P<product>.+)"), "utter_reason_similar"),
    (re.compile(r"popular in (?P<category>.+)"), "utter_reason_popular_in"),
    (re.compile(r"popular with .+"), "utter_reason_peers"),
    (re.compile(r"popular right now"), "utter_reason_popular"),
)


def reason_text(reason: str, domain: DomainDict, lang: str) -> str:
    """Why a product is recommended, in ``lang``; English keeps the recommender's own words."""
    if lang == "en":
        return reason
    for pattern, name in _REASONS:
        found = pattern.fullmatch(reason)
        if found:
            values = found.groupdict()
            if "category" in values:
                values["category"] = category_name(values["category"], domain, lang)
            return render(domain, name, lang, **values)
    return reason


def product_carousel(recs: list, shop_url: str, domain: DomainDict, lang: str = "en") -> dict:
    """rasa-webchat's carousel (a generic template): picture, price, reason and a link per product."""
    elements = []
    for r in recs:
        url = f"{shop_url}/products/{r.product_id}"
        elements.append(
            {
                "title": r.name,
                "subtitle": f"{format_money(r.price, lang)} · {reason_text(r.reason, domain, lang)}",
                "image_url": f"{shop_url}/images/products/{r.product_id}.svg",
                "default_action": {"type": "web_url", "url": url},
                "buttons": [
                    {"type": "web_url", "url": url, "title": render(domain, "utter_button_view_product", lang)},
                    {
                        "type": "postback",
                        "title": render(domain, "utter_button_tell_me_more", lang),
                        "payload": "/product_question" + json.dumps({"product": r.name[:60]}),
                    },
                ],
            }
        )
    return {"type": "template", "payload": {"template_type": "generic", "elements": elements}}


class ActionRecommend(SafeAction):
    """3-5 products with price and a one-phrase reason: product cards in the website's widget,
    elsewhere a text list with buttons (REST clients and messaging apps)."""

    def name(self) -> str:
        return "action_recommend"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        text = latest_text(tracker)
        product_query = _entity(tracker, "product")
        category = _entity(tracker, "category")

        def work(session):  # noqa: ANN001, ANN202 - one transaction for the whole lookup
            context_id = None
            if product_query:
                found = catalog.find_products(session, product_query, 1)
                context_id = found[0].id if found else None
            elif ident.customer_id is not None and LAST_ORDER_RE.search(text):
                recent = order_service.recent_orders(session, ident.customer_id, 1)
                context_id = recent[0].items[0].product_id if recent and recent[0].items else None
            if category and not context_id:
                return rec_service.popular_in_category(session, category, ident.customer_id, 5)
            if context_id and ident.customer_id is None:
                return rec_service.similar_products(session, context_id, 5)
            return rec_service.recommend_for_customer(session, ident.customer_id, 5, context_id)

        recs = await in_transaction(work)
        if not recs:
            dispatcher.utter_message(response="utter_no_recommendations")
            return ident.events
        lang = language(tracker)
        lines = [f"- {r.name}, {format_money(r.price, lang)} ({reason_text(r.reason, domain, lang)})" for r in recs[:5]]
        intro = render(domain, "utter_recommend_personal" if ident.customer_id else "utter_recommend_popular", lang)
        if tracker.get_latest_input_channel() in CARD_CHANNELS:  # product cards in the website's widget
            dispatcher.utter_message(text=intro)
            dispatcher.utter_message(attachment=product_carousel(recs[:5], get_settings().shop_url, domain, lang))
            return ident.events
        dispatcher.utter_message(
            text=intro + "\n" + "\n".join(lines),
            buttons=[
                {
                    "title": f"{r.name} ({format_money(r.price, lang)})",
                    "payload": "/product_question" + json.dumps({"product": r.name[:60]}),
                }
                for r in recs[:5]
            ],
        )
        return ident.events
