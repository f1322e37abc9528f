"""Delivery: changing the shipping address of an order that has not shipped yet."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    OrderFormValidator,
    SafeAction,
    confirm_value,
    in_transaction,
    latest_text,
    resolve_identity,
)
from actions.csat import csat_offer
from actions.replies import reply_error
from bot.analytics.topics_zh import is_chinese
from bot.services import address_zh
from bot.services import orders as order_service
from bot.services.errors import InvalidInput, ServiceError

ADDRESS_SLOTS = ("new_address", "address_confirm")


def format_parts(parts: dict) -> str:
    """The parsed address as the confirmation shows it and the slot keeps it (parsed again on change)."""
    if is_chinese(parts["line1"] + parts["city"]):
        return address_zh.chinese_address_text(parts["line1"], parts.get("line2"), parts["city"], parts["postcode"])
    return ", ".join(str(parts[k]) for k in ("line1", "line2", "city", "postcode", "country") if parts.get(k))


class ValidateAddressForm(OrderFormValidator):
    own_intents = ("change_shipping_address",)
    task_label = "address change"

    def name(self) -> str:
        return "validate_address_form"

    def check_order(self, session: Any, customer_id: int, order_number: str) -> Any:
        return order_service.check_address_changeable(session, customer_id, order_number)

    async def extract_new_address(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Carry-over and correction: an address in the request ("ship 190011 to 77 Pine Road,
        Denver, 80203") or a new one where the change is confirmed ("no, it's 21 Oak Street, ...")."""
        requested = tracker.get_slot("requested_slot")
        if requested not in (None, "address_confirm"):
            return {}
        parts = order_service.address_in_text(latest_text(tracker))
        if parts is None or format_parts(parts) == tracker.get_slot("new_address"):
            return {}
        if requested is None:
            return {"new_address": format_parts(parts)}
        return {"new_address": format_parts(parts), "address_confirm": None}

    async def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            parts = order_service.parse_address(str(value or ""))
        except InvalidInput as exc:
            reply_error(dispatcher, exc)
            return {"new_address": None}
        return {"new_address": format_parts(parts)}

    async def validate_address_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"address_confirm": confirm_value(value)}


class ActionAskNewAddress(SafeAction):
    def name(self) -> str:
        return "action_ask_new_address"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_new_address_question")
        return []


class ActionAskAddressConfirm(SafeAction):
    def name(self) -> str:
        return "action_ask_address_confirm"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(
            response="utter_address_confirm_question", number=tracker.get_slot("order_number"),
            address=tracker.get_slot("new_address"),
        )
        return []


class ActionChangeAddress(SafeAction):
    def name(self) -> str:
        return "action_change_address"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet(name, None) for name in ADDRESS_SLOTS]
        ident = resolve_identity(tracker)
        confirmed = tracker.get_slot("address_confirm")
        number = tracker.get_slot("order_number")
        if ident.customer_id is None or confirmed is None or not number:
            return reset
        if confirmed is False:
            dispatcher.utter_message(response="utter_address_change_declined")
            return reset
        try:
            order = await in_transaction(
                order_service.change_shipping_address, ident.customer_id, number, tracker.get_slot("new_address")
            )
        except ServiceError as exc:  # refused now: clear the "yes" so it can't confirm a later request
            reply_error(dispatcher, exc, number=number)
            return reset
        dispatcher.utter_message(response="utter_address_changed", number=order.number, address=order.shipping_address)
        return reset + csat_offer(tracker)
