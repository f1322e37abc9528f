"""Orders: tracking and cancellation."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import OrderFormValidator, SafeAction, fmt_date, in_transaction, resolve_identity
from actions.csat import csat_offer
from bot.services import orders as order_service
from bot.services.errors import ServiceError
from bot.services.types import OrderSummary, format_money

STATUS_TEXT = {
    "pending": "is confirmed and waiting for payment to clear",
    "processing": "is being prepared in our warehouse",
    "shipped": "is on its way",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
    "returned": "was returned",
}


def describe_order(order: OrderSummary) -> str:
    """One short paragraph a customer can act on."""
    items = ", ".join(f"{line.quantity}x {line.name}" for line in order.items[:4])
    if len(order.items) > 4:
        items += f" and {len(order.items) - 4} more"
    text = f"Order #{order.number} ({items}, {format_money(order.total)}) {STATUS_TEXT.get(order.status, order.status)}"
    if order.status == "delivered" and order.delivered_at:
        text += f" on {fmt_date(order.delivered_at)}."
    elif order.status == "shipped":
        if order.carrier and order.tracking_number:
            text += f" with {order.carrier} (tracking {order.tracking_number})"
        text += f", expected {fmt_date(order.eta)}." if order.eta else "."
        if order.latest_event:
            ev = order.latest_event
            text += f" Latest update: {ev.description}, {ev.location} ({fmt_date(ev.occurred_at)})."
    elif order.status in ("pending", "processing"):
        text += f"; estimated delivery {fmt_date(order.eta)}." if order.eta else "."
    else:
        text += "."
    return text


def clear_order_task(*extra: str) -> list[EventType]:
    return [SlotSet(name, None) for name in ("order_number", *extra)]


class ValidateTrackOrderForm(OrderFormValidator):
    order_optional_when_verified = True
    own_intents = ("track_order",)
    task_label = "tracking"

    def name(self) -> str:
        return "validate_track_order_form"


class ActionTrackOrder(SafeAction):
    def name(self) -> str:
        return "action_track_order"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        if ident.customer_id is None:
            return []  # the form was stopped; its reason was already given
        number = tracker.get_slot("order_number")
        if number:
            order = await in_transaction(order_service.get_order, ident.customer_id, number)
            dispatcher.utter_message(text=describe_order(order))
            return ident.events + csat_offer(tracker)
        orders = await in_transaction(order_service.recent_orders, ident.customer_id, 3)
        if not orders:
            dispatcher.utter_message(text="I don't see any orders on your account yet.")
            return ident.events
        lines = "\n".join(f"- {describe_order(o)}" for o in orders)
        # A blank line ends the list: the widget renders Markdown, where a line right after a
        # bullet continues that bullet ("... was cancelled. Ask me about any of them by number.").
        dispatcher.utter_message(
            text=f"Here are your most recent orders:\n{lines}\n\nAsk me about any of them by number."
        )
        return ident.events + csat_offer(tracker)


class ValidateCancelOrderForm(OrderFormValidator):
    own_intents = ("cancel_order",)
    task_label = "cancellation"

    def name(self) -> str:
        return "validate_cancel_order_form"

    def check_order(self, session: Any, customer_id: int, order_number: str) -> Any:
        return order_service.check_cancellable(session, customer_id, order_number)

    async def validate_cancel_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"cancel_confirm": bool(value)}


class ActionAskCancelConfirm(SafeAction):
    def name(self) -> str:
        return "action_ask_cancel_confirm"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        order = await in_transaction(order_service.get_order, ident.customer_id, tracker.get_slot("order_number"))
        refund = f" The {format_money(order.total)} you paid will be refunded." if order.paid else ""
        dispatcher.utter_message(
            text=f"{describe_order(order)}\nShall I cancel it?{refund}",
            buttons=[{"title": "Yes, cancel it", "payload": "/affirm"}, {"title": "No, keep it", "payload": "/deny"}],
        )
        return []


class ActionCancelOrder(SafeAction):
    def name(self) -> str:
        return "action_cancel_order"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        confirmed = tracker.get_slot("cancel_confirm")
        number = tracker.get_slot("order_number")
        reset = [SlotSet("cancel_confirm", None)]
        if ident.customer_id is None or confirmed is None or not number:
            return reset  # stopped early: the reason was already given
        if confirmed is False:
            dispatcher.utter_message(text=f"Okay, order #{number} stays as it is. Anything else I can do?")
            return reset
        try:
            result = await in_transaction(order_service.cancel_order, ident.customer_id, number)
        except ServiceError as exc:  # refused now: clear the "yes" so it can't confirm a later request
            dispatcher.utter_message(text=exc.message)
            return reset
        text = f"Done: order #{result.order.number} is cancelled."
        if result.refund:
            text += (
                f" Your refund {result.refund.number} of {format_money(result.refund.amount)} is on its way "
                "to your original payment method (usually 3-5 business days)."
            )
        dispatcher.utter_message(text=text)
        return reset + csat_offer(tracker)
