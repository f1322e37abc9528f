"""FAQ answers. The wording lives in bot/content/faq.yml, the one editable source."""

from __future__ import annotations

import re

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import SafeAction, latest_text
from actions.replies import language
from bot.services import faq

#: an account change that names the email: the email change itself, no explanation first
EMAIL_CHANGE_RE = re.compile(
    r"\b(change|chnage|update|new|different|switch|replace|correct|fix|edit)\b.{0,40}\be-?mail\b|"
    r"\be-?mail\b.{0,30}\b(change|update|wrong|outdated|old)\b|邮箱|电子邮件",
    re.I,
)

# intent -> FAQ topic (faq.yml keys)
INTENT_TOPICS = {
    "delivery_options": "delivery_options",
    "delivery_period": "delivery_period",
    "check_payment_methods": "payment_methods",
    "payment_issue": "payment_issue",
    "check_refund_policy": "refund_policy",
    "check_cancellation_fee": "cancellation_fee",
    "contact_customer_service": "contact_customer_service",
    "place_order": "place_order",
    "change_order": "change_order",
    "create_account": "create_account",
    "edit_account": "edit_account",
    "delete_account": "delete_account",
    "switch_account": "switch_account",
    "recover_password": "recover_password",
    "registration_problems": "registration_problems",
    "newsletter_subscription": "newsletter",
    "set_up_shipping_address": "set_up_shipping_address",
    "product_question": "product_question",
}


class ActionAnswerFaq(SafeAction):
    def name(self) -> str:
        return "action_answer_faq"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        if intent == "edit_account" and EMAIL_CHANGE_RE.search(latest_text(tracker)):
            # "change my email (to ...)": the customer said which change, so it starts (the
            # explanation and the offer are for "change my account details")
            return [FollowupAction("email_change_form")]
        dispatcher.utter_message(text=faq.answer(INTENT_TOPICS.get(intent or "", intent), language(tracker)))
        return []
