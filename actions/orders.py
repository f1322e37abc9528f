"""Orders: tracking and cancellation."""

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
    order_numbers_in,
    resolve_identity,
)
from actions.csat import csat_offer
from actions.replies import fmt_date, language, render, reply_error
from bot.services import orders as order_service
from bot.services.errors import NotFound, ServiceError
from bot.services.types import OrderSummary, format_money


def describe_order(order: OrderSummary, domain: DomainDict, lang: str = "en") -> str:
    """One short paragraph a customer can act on, from the domain's order responses in ``lang``."""

    def say(name: str, **values: Any) -> str:
        return render(domain, name, lang, **values)

    if lang == "zh":
        items = "、".join(f"{line.name} ×{line.quantity}" for line in order.items[:4])
    else:
        items = ", ".join(f"{line.quantity}x {line.name}" for line in order.items[:4])
    if len(order.items) > 4:
        items += say("utter_order_more_items", count=len(order.items) - 4)
    status = say(f"utter_order_status_{order.status}") or order.status
    total = format_money(order.total, lang)
    text = say("utter_order_summary", number=order.number, items=items, total=total, status=status)
    if order.status == "delivered" and order.delivered_at:
        text += say("utter_order_delivered_on", date=fmt_date(order.delivered_at, lang))
    elif order.status == "shipped":
        if order.carrier and order.tracking_number:
            text += say("utter_order_shipped_with", carrier=order.carrier, tracking=order.tracking_number)
        text += say("utter_order_expected", date=fmt_date(order.eta, lang)) if order.eta else say("utter_order_end")
        if order.latest_event:
            ev = order.latest_event
            text += say(
                "utter_order_latest", description=ev.description, location=ev.location,
                date=fmt_date(ev.occurred_at, lang),
            )
    elif order.status in ("pending", "processing"):
        text += say("utter_order_eta", date=fmt_date(order.eta, lang)) if order.eta else say("utter_order_end")
    else:
        text += say("utter_order_end")
    return text


def clear_order_task(*extra: str) -> list[EventType]:
    return [SlotSet(name, None) for name in ("order_number", *extra)]


class ValidateTrackOrderForm(OrderFormValidator):
    order_optional_when_verified = True
    own_intents = ("track_order",)
    task_label = "tracking"

    def name(self) -> str:
        return "validate_track_order_form"


def numbers_asked(tracker: Tracker) -> list[str]:
    """Every order number of the customer's latest message that named any ("where are my orders
    190009 and 190010?"), in order, at most three."""
    for event in reversed(tracker.events or []):
        if event.get("event") != "user":
            continue
        numbers = order_numbers_in((event.get("parse_data") or {}).get("entities"))
        if numbers:
            return numbers[:3]
    return []


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
            dispatcher.utter_message(text=describe_order(order, domain, language(tracker)))
            for other in (n for n in numbers_asked(tracker) if n != number):
                try:
                    order = await in_transaction(order_service.get_order, ident.customer_id, other)
                except NotFound:  # another number of "where are 190001 and 190002?" that isn't theirs
                    dispatcher.utter_message(response="utter_order_not_found", number=other)
                    continue
                dispatcher.utter_message(text=describe_order(order, domain, language(tracker)))
            return ident.events + csat_offer(tracker)
        orders = await in_transaction(order_service.recent_orders, ident.customer_id, 3)
        if not orders:
            dispatcher.utter_message(response="utter_no_orders_yet")
            return ident.events
        lines = "\n".join(f"- {describe_order(o, domain, language(tracker))}" for o in orders)
        # A blank line ends the list: the widget renders Markdown, where a line right after a
        # bullet continues that bullet ("... was cancelled. Ask me about any of them by number.").
        dispatcher.utter_message(response="utter_recent_orders", lines=lines)
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
        return {"cancel_confirm": confirm_value(value)}


class ActionAskCancelConfirm(SafeAction):
    def name(self) -> str:
        return "action_ask_cancel_confirm"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        order = await in_transaction(order_service.get_order, ident.customer_id, tracker.get_slot("order_number"))
        lang = language(tracker)
        total = format_money(order.total, lang)
        refund = render(domain, "utter_cancel_refund_note", lang, total=total) if order.paid else ""
        dispatcher.utter_message(
            response="utter_cancel_confirm_question", order=describe_order(order, domain, lang), refund=refund
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
            dispatcher.utter_message(response="utter_cancel_declined", number=number)
            return reset
        try:
            result = await in_transaction(order_service.cancel_order, ident.customer_id, number)
        except ServiceError as exc:  # refused now: clear the "yes" so it can't confirm a later request
            reply_error(dispatcher, exc, number=number)
            return reset
        if result.refund:
            dispatcher.utter_message(
                response="utter_cancelled_refunded", number=result.order.number, refund=result.refund.number,
                amount=format_money(result.refund.amount, language(tracker)),
            )
        else:
            dispatcher.utter_message(response="utter_cancelled", number=result.order.number)
        return reset + csat_offer(tracker)
