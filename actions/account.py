"""Account: changing the account email (form) and newsletter subscription."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import OrderFormValidator, SafeAction, confirm_value, in_transaction, latest_text, resolve_identity
from actions.csat import csat_offer
from actions.replies import language, reply_error
from bot.services import accounts as account_service
from bot.services import faq
from bot.services.errors import ServiceError

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
UNSUBSCRIBE_RE = re.compile(
    r"\b(un-?subscribe|opt(?:ing)?[- ]?out|stop|cancel|remove|no longer|don'?t want|too many)\b", re.I
)


class ValidateEmailChangeForm(OrderFormValidator):
    """Identity first (website token, or order number + current email), then the new email."""

    order_optional_when_verified = True
    own_intents = ("edit_account",)
    task_label = "email change"

    def name(self) -> str:
        return "validate_email_change_form"

    async def extract_new_email(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Carry-over and correction: the new email in the request ("change my email to ...") or a
        retyped one where the change is confirmed ("oops typo, ..."). Only once the customer is
        known: before that, an email in the message is the one that proves who they are."""
        requested = tracker.get_slot("requested_slot")
        if requested not in (None, "email_change_confirm") or resolve_identity(tracker).customer_id is None:
            return {}
        match = EMAIL_RE.search(latest_text(tracker)[:500])
        email = account_service.normalize_email(match.group(0)) if match else None
        if not email or email == tracker.get_slot("new_email"):
            return {}
        if requested is None:
            return {"new_email": email}
        return {"new_email": email, "email_change_confirm": None}

    async def validate_new_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        match = EMAIL_RE.search(str(value or "")[:500])
        email = account_service.normalize_email(match.group(0)) if match else None
        if not email:
            dispatcher.utter_message(response="utter_new_email_malformed")
            return {"new_email": None}
        return {"new_email": email}

    async def validate_email_change_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"email_change_confirm": confirm_value(value)}


class ActionAskNewEmail(SafeAction):
    def name(self) -> str:
        return "action_ask_new_email"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_new_email_question")
        return []


class ActionAskEmailChangeConfirm(SafeAction):
    def name(self) -> str:
        return "action_ask_email_change_confirm"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_email_change_confirm_question", email=tracker.get_slot("new_email"))
        return []


class ActionChangeEmail(SafeAction):
    def name(self) -> str:
        return "action_change_email"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet("new_email", None), SlotSet("email_change_confirm", None)]
        ident = resolve_identity(tracker)
        confirmed = tracker.get_slot("email_change_confirm")
        new_email = tracker.get_slot("new_email")
        if ident.customer_id is None or confirmed is None or not new_email:
            return reset
        if confirmed is False:
            dispatcher.utter_message(response="utter_email_change_declined")
            return reset
        try:
            customer = await in_transaction(account_service.change_email, ident.customer_id, new_email)
        except ServiceError as exc:  # e.g. email in use: clear the "yes" so it can't confirm the next email
            reply_error(dispatcher, exc)
            return reset
        dispatcher.utter_message(response="utter_email_changed", name=customer.name.split()[0], email=customer.email)
        return reset + [SlotSet("email", customer.email)] + csat_offer(tracker)


class ActionNewsletter(SafeAction):
    def name(self) -> str:
        return "action_newsletter"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        text = latest_text(tracker)
        if ident.customer_id is None:
            dispatcher.utter_message(text=faq.answer("newsletter", language(tracker)))
            return ident.events
        subscribe = not UNSUBSCRIBE_RE.search(text)
        customer = await in_transaction(account_service.set_newsletter, ident.customer_id, subscribe)
        if customer.newsletter:
            dispatcher.utter_message(response="utter_newsletter_subscribed", email=customer.email)
        else:
            dispatcher.utter_message(response="utter_newsletter_unsubscribed")
        return ident.events
