"""Refunds and returns: request (form), status, and the eligibility policy."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    CORRECTION_RE,
    OrderFormValidator,
    SafeAction,
    confirm_value,
    in_transaction,
    latest_text,
    previous_slot_value,
    resolve_identity,
)
from actions.csat import csat_offer
from actions.replies import fmt_date, language, render, reply_error
from bot.services import orders as order_service
from bot.services import refunds as refund_service
from bot.services.errors import NotAllowed, ServiceError
from bot.services.types import RefundInfo, format_money

WHOLE_ORDER = "the whole order"
_WHOLE = re.compile(
    r"\b(all|everything|whole|entire|both|every item|all items|all of (it|them))\b|整单|整个订单|全部|都退|所有", re.I
)
REFUND_SLOTS = ("refund_item", "refund_reason", "refund_confirm")


def describe_refund(refund: RefundInfo, domain: DomainDict, lang: str = "en") -> str:
    """One line per refund or return, from the domain's ``utter_refund_line_*`` in ``lang``."""
    values = {
        "refund": refund.number, "item": refund.item_name, "number": refund.order_number,
        "amount": format_money(refund.amount, lang), "date": fmt_date(refund.created_at, lang),
        "kind": render(domain, f"utter_refund_kind_{refund.kind}", lang) or refund.kind.capitalize(),
        "status": render(domain, f"utter_refund_status_{refund.status}", lang) or refund.status,
    }
    return render(domain, "utter_refund_line_item" if refund.item_name else "utter_refund_line_order", lang, **values)


def _check_eligible(session: Any, customer_id: int, order_number: str, item: str | None = None) -> Any:
    verdict = refund_service.check_refund_eligibility(session, customer_id, order_number, item)
    if not verdict.eligible:
        raise NotAllowed(verdict.code, verdict.message)
    return verdict


def _matched_item(session: Any, customer_id: int, order_number: str, item: str) -> str:
    """Name of the order line the refund policy matched for `item`, so the confirmation shows it."""
    order = order_service.load_order(session, customer_id, order_number)
    line = refund_service.match_item(order, item) or refund_service.mentioned_item(order, item)
    item = line.product.name if line is not None else item
    _check_eligible(session, customer_id, order_number, item)
    return item


def _mentioned_item(session: Any, customer_id: int, order_number: str, text: str) -> str | None:
    """The customer's order line a longer message names, or None (also for an order not theirs)."""
    try:
        order = order_service.load_order(session, customer_id, order_number)
    except ServiceError:
        return None
    line = refund_service.mentioned_item(order, text)
    return line.product.name if line is not None else None


#: "not sure" where the item is asked: the items are offered, no "I couldn't find that item"
_UNSURE = re.compile(
    r"^\W*(?:i'?m |im )?(?:not sure|no idea|dunno|idk|don'?t know|do not know|no clue|can'?t remember|"
    r"which one\??|what do you mean)\b|不知道|不确定|不清楚",
    re.I,
)
_NOT_THE = re.compile(r"\bnot (?:the|that|my)\b", re.I)
_CHANGE = re.compile(r"\b(?:wait|actually|change|rather|no)\b", re.I)
_NEW_REASON = re.compile(r"\breason\b[^:]{0,30}?(?:\bis\b|\bshould be\b|\bwas\b|:)\s*:?\s*(?P<reason>.{2,})", re.I)


class ValidateRefundForm(OrderFormValidator):
    own_intents = ("get_refund", "return_item")
    task_label = "return or refund"
    no_switch_slots = ("refund_reason",)

    def name(self) -> str:
        return "validate_refund_form"

    def check_order(self, session: Any, customer_id: int, order_number: str) -> Any:
        return _check_eligible(session, customer_id, order_number)

    async def _check(self, number: str, customer_id: int, dispatcher: CollectingDispatcher) -> dict[str, Any]:
        result = await super()._check(number, customer_id, dispatcher)
        if result.get("order_number"):
            order = await in_transaction(order_service.get_order, customer_id, number)
            if len(order.items) == 1:  # nothing to choose
                result["refund_item"] = order.items[0].name
        return result

    async def extract_refund_item(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Carry-over and correction: the item the request already names ("return the cookbook
        from 190009"), or another item named later ("the knife, not the board")."""
        requested = tracker.get_slot("requested_slot")
        if requested == "refund_item":
            return {}  # the answer itself: the slot mapping hands it to validate_refund_item
        text = latest_text(tracker)
        if requested is not None and not (CORRECTION_RE.search(text) or _NOT_THE.search(text)):
            return {}
        ident = resolve_identity(tracker)
        number = tracker.get_slot("order_number")
        if ident.customer_id is None or not number:
            return {}  # not verified yet: the item is asked once the order is theirs
        name = await in_transaction(_mentioned_item, ident.customer_id, number, text)
        previous = tracker.get_slot("refund_item")
        if not name or name == previous:
            return {}
        if requested is None:
            return {"refund_item": name}
        dispatcher.utter_message(response="utter_item_corrected", item=name)
        return {"refund_item": name, "refund_reason": None, "refund_confirm": None}  # a new item, a new reason

    async def extract_refund_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Carry-over and correction: a reason the request already gives ("..., it arrived
        damaged"), or a new one at the confirmation ("the reason should be: screen cracked")."""
        requested = tracker.get_slot("requested_slot")
        text = latest_text(tracker)
        if requested is None and not tracker.get_slot("refund_reason"):
            reason = refund_service.reason_in_text(text)
            return {"refund_reason": reason} if reason else {}
        if requested == "refund_confirm" and (CORRECTION_RE.search(text) or _CHANGE.search(text)):
            found = _NEW_REASON.search(text)  # "yes, the reason is right" confirms: no correction word
            if found:
                return {"refund_reason": found.group("reason"), "refund_confirm": None}
        return {}

    async def validate_refund_item(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        ident = resolve_identity(tracker)
        text = str(value or "").strip()[:200]
        number = tracker.get_slot("order_number")
        if ident.customer_id is None or not number:
            return {"refund_item": None}
        previous = previous_slot_value(tracker, "order_number")
        if previous and previous != number:  # the order was corrected in this message: ask for its item
            return {"refund_item": None}
        if not text:
            return {"refund_item": None}
        if _UNSURE.search(text) and not _WHOLE.search(text):
            dispatcher.utter_message(response="utter_help_pick_item")  # the question's buttons follow
            return {"refund_item": None}
        if _WHOLE.search(text):
            return {"refund_item": WHOLE_ORDER}
        if not text.isascii():  # 「耳机坏了」: the catalog's name for the product the NLU recognised
            text = next(
                (str(e.get("value")) for e in (tracker.latest_message or {}).get("entities") or []
                 if e.get("entity") == "product" and e.get("value")),
                text,
            )
        try:
            name = await in_transaction(_matched_item, ident.customer_id, number, text)
        except NotAllowed as exc:
            reply_error(dispatcher, exc, number=number)
            return {"refund_item": None}
        return {"refund_item": name}

    async def validate_refund_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:
            return {"refund_reason": None}  # cleared by a correction: asked again
        text = " ".join(str(value or "").split())[:500]
        if len(text) < 2:
            dispatcher.utter_message(response="utter_refund_reason_too_short")
            return {"refund_reason": None}
        return {"refund_reason": text}

    async def validate_refund_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"refund_confirm": confirm_value(value)}


class ActionAskRefundItem(SafeAction):
    def name(self) -> str:
        return "action_ask_refund_item"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        order = await in_transaction(order_service.get_order, ident.customer_id, tracker.get_slot("order_number"))
        lang = language(tracker)
        buttons = [{"title": line.name, "payload": line.name} for line in order.items[:8]]
        buttons.append({"title": render(domain, "utter_whole_order", lang), "payload": "the whole order"})
        kind = tracker.get_slot("refund_kind") or "refund"
        dispatcher.utter_message(response=f"utter_ask_refund_item_{kind}", number=order.number, buttons=buttons)
        return []


class ActionAskRefundReason(SafeAction):
    def name(self) -> str:
        return "action_ask_refund_reason"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        kind = tracker.get_slot("refund_kind") or "refund"
        dispatcher.utter_message(response=f"utter_ask_refund_reason_{kind}")
        return []


class ActionAskRefundConfirm(SafeAction):
    def name(self) -> str:
        return "action_ask_refund_confirm"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        kind = tracker.get_slot("refund_kind") or "refund"
        item = tracker.get_slot("refund_item") or WHOLE_ORDER
        number = tracker.get_slot("order_number")
        what = "whole" if item == WHOLE_ORDER else "item"
        dispatcher.utter_message(
            response=f"utter_ask_refund_confirm_{kind}_{what}", number=number, item=item,
            reason=tracker.get_slot("refund_reason"),
        )
        return []


class ActionSubmitRefund(SafeAction):
    def name(self) -> str:
        return "action_submit_refund"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet(name, None) for name in REFUND_SLOTS]
        ident = resolve_identity(tracker)
        confirmed = tracker.get_slot("refund_confirm")
        number = tracker.get_slot("order_number")
        if ident.customer_id is None or confirmed is None or not number:
            return reset
        if confirmed is False:
            dispatcher.utter_message(response="utter_refund_declined")
            return reset
        kind = tracker.get_slot("refund_kind") or "refund"
        item = tracker.get_slot("refund_item")
        try:
            refund = await in_transaction(
                refund_service.request_refund,
                ident.customer_id,
                number,
                kind,
                None if item in (None, WHOLE_ORDER) else item,
                tracker.get_slot("refund_reason") or "",
            )
        except ServiceError as exc:  # refused now: clear the "yes" so it can't confirm a later request
            reply_error(dispatcher, exc, number=number)
            return reset
        dispatcher.utter_message(
            response=f"utter_refund_submitted_{kind}", refund=refund.number,
            amount=format_money(refund.amount, language(tracker)),
        )
        return reset + csat_offer(tracker)


class ValidateTrackRefundForm(OrderFormValidator):
    order_optional_when_verified = True
    own_intents = ("track_refund",)
    task_label = "refund tracking"

    def name(self) -> str:
        return "validate_track_refund_form"


class ActionTrackRefund(SafeAction):
    def name(self) -> str:
        return "action_track_refund"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ident = resolve_identity(tracker)
        if ident.customer_id is None:
            return []
        text = latest_text(tracker)
        refund_number = refund_service.normalize_refund_number(next(iter(re.findall(r"RF[-\s]?\d{6}", text, re.I)), ""))
        number = refund_number or tracker.get_slot("order_number")
        if number:
            refunds = await in_transaction(refund_service.refund_status, ident.customer_id, number)
            if not refunds:
                dispatcher.utter_message(response="utter_no_refund_on_order", number=number)
                return ident.events
        else:
            refunds = await in_transaction(refund_service.recent_refunds, ident.customer_id, 3)
            if not refunds:
                dispatcher.utter_message(response="utter_no_refunds")
                return ident.events
        lang = language(tracker)
        dispatcher.utter_message(text="\n".join(describe_refund(r, domain, lang) for r in refunds))
        return ident.events + csat_offer(tracker)
