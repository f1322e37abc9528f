"""Questions the forms ask (the wording lives here so every form asks the same way), and the repairs
when a question cannot be answered: "I don't know" and another request in the middle of a form."""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    SafeAction,
    in_transaction,
    latest_intent,
    previous_slot_value,
    resolve_identity,
)
from actions.replies import language, render, task_label
from bot.services import orders as order_service

PURPOSE = {
    "track_order_form": "to look it up",
    "track_refund_form": "for the refund",
    "invoice_form": "for the invoice",
    "cancel_order_form": "you'd like to cancel",
    "refund_form": "for the refund or return",
    "address_form": "whose address should change",
    "email_change_form": "(any of your orders, so I can verify it's you)",
}
#: form -> (what the customer calls it, the intent that starts it again)
TASKS = {
    "track_order_form": ("tracking", "track_order"),
    "track_refund_form": ("refund tracking", "track_refund"),
    "invoice_form": ("invoice", "get_invoice"),
    "cancel_order_form": ("cancellation", "cancel_order"),
    "refund_form": ("return or refund", "get_refund"),
    "address_form": ("address change", "change_shipping_address"),
    "email_change_form": ("email change", "edit_account"),
    "feedback_form": ("feedback", "review"),
}
#: a form's answers that belong to it alone: cleared when the customer leaves it for another task
FORM_ANSWERS = (
    "refund_item",
    "refund_reason",
    "refund_confirm",
    "cancel_confirm",
    "new_address",
    "address_confirm",
    "new_email",
    "email_change_confirm",
    "feedback_rating",
    "feedback_comment",
    "repair_misses",
)
DONT_KNOW = "dont_know"
RECENT_ORDERS = 5


def order_button(number: str, title: str) -> dict[str, str]:
    """A button that answers the order-number question with `number` (an entity, no NLU guess)."""
    return {"title": title, "payload": "/inform" + json.dumps({"order_number": number})}


async def recent_order_buttons(customer_id: int) -> list[dict[str, str]]:
    orders = await in_transaction(order_service.recent_orders, customer_id, RECENT_ORDERS)
    buttons = []
    for order in orders:
        first = order.items[0].name if order.items else ""
        more = f" +{len(order.items) - 1}" if len(order.items) > 1 else ""
        buttons.append(order_button(order.number, f"#{order.number} {first}{more} ({order.status})"[:80]))
    return buttons


def helped_already(tracker: Tracker) -> bool:
    """The customer said they don't know the answer and action_help_missing_answer just helped:
    the form must not ask the same question again right after it."""
    return latest_intent(tracker) == DONT_KNOW


class ActionAskOrderNumber(SafeAction):
    def name(self) -> str:
        return "action_ask_order_number"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if helped_already(tracker):
            return []
        form = (tracker.active_loop or {}).get("name") or ""
        purpose = PURPOSE.get(form, "")
        ident = resolve_identity(tracker)
        # signed in: the recent orders as buttons, so nobody has to look the number up
        buttons = await recent_order_buttons(ident.customer_id) if ident.customer_id is not None else []
        dispatcher.utter_message(
            response="utter_order_number_question", purpose=f" {purpose}" if purpose else "", buttons=buttons
        )
        return []


class ActionAskEmail(SafeAction):
    def name(self) -> str:
        return "action_ask_email"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if helped_already(tracker):
            return []
        dispatcher.utter_message(response="utter_order_email_question")
        return []


class ActionHelpMissingAnswer(SafeAction):
    """ "I don't know (the order number)": a way forward instead of the same question again.

    Signed in: the recent orders as buttons. Not signed in: where the number is, and a person.
    Asked for the email: what it is, and a person. The form stays open, so a number typed next
    still goes on with the request.
    """

    def name(self) -> str:
        return "action_help_missing_answer"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        requested = tracker.get_slot("requested_slot")
        if requested == "email":
            dispatcher.utter_message(response="utter_help_find_email")
            return []
        if requested not in (None, "order_number"):
            dispatcher.utter_message(response="utter_repair_way_out", task=task_label("request", tracker))
            return []
        ident = resolve_identity(tracker)
        if ident.customer_id is not None:
            buttons = await recent_order_buttons(ident.customer_id)
            if buttons:
                dispatcher.utter_message(response="utter_help_pick_recent_order", buttons=buttons)
            else:
                dispatcher.utter_message(response="utter_help_no_orders")
            return ident.events
        dispatcher.utter_message(response="utter_help_find_order_number")
        return ident.events


class ActionSwitchTask(SafeAction):
    """Another request in the middle of a form (the rules have just left the form): say so in one line,
    offer a button back to the first task, and clear the first task's answers."""

    def name(self) -> str:
        return "action_switch_task"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        left = left_form(tracker)
        label, intent = TASKS.get(left or "", ("request", ""))
        if left == "refund_form" and tracker.get_slot("refund_kind") == "return":
            label, intent = "return", "return_item"
        paused_number = previous_slot_value(tracker, "order_number")
        values: dict[str, Any] = {"task": task_label(label, tracker)}
        if paused_number and left not in ("track_order_form", "feedback_form") and intent:
            button = {
                "title": render(
                    domain, "utter_back_to_task", language(tracker), task=values["task"], number=paused_number
                ),
                "payload": f"/{intent}" + json.dumps({"order_number": paused_number}),
            }
            dispatcher.utter_message(
                response="utter_task_paused_order", number=paused_number, buttons=[button], **values
            )
        else:
            dispatcher.utter_message(response="utter_task_paused", **values)
        return [SlotSet(name, None) for name in FORM_ANSWERS if tracker.get_slot(name) is not None]


def left_form(tracker: Tracker) -> str | None:
    """The form that was active before the latest ``action_deactivate_loop``."""
    for event in reversed(tracker.events or []):
        if event.get("event") == "active_loop" and event.get("name"):
            return str(event["name"])
    return None
