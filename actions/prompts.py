"""Questions the forms ask (the wording lives here so every form asks the same way)."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import SafeAction

PURPOSE = {
    "track_order_form": "to look it up",
    "track_refund_form": "for the refund",
    "invoice_form": "for the invoice",
    "cancel_order_form": "you'd like to cancel",
    "refund_form": "for the refund or return",
    "address_form": "whose address should change",
    "email_change_form": "(any of your orders, so I can verify it's you)",
}


class ActionAskOrderNumber(SafeAction):
    def name(self) -> str:
        return "action_ask_order_number"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form = (tracker.active_loop or {}).get("name") or ""
        purpose = PURPOSE.get(form, "")
        dispatcher.utter_message(
            text=f"What's the order number {purpose}? It's the 6-digit number in your confirmation "
            "email, for example 104233.".replace(" ?", "?")
        )
        return []


class ActionAskEmail(SafeAction):
    def name(self) -> str:
        return "action_ask_email"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text="For your security: what's the email address on that order?")
        return []
