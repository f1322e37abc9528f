"""Support: human hand-over requests, complaints, feedback, fallback and task control."""

from __future__ import annotations

import json
import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import handoff
from actions.common import (
    MAX_MISSES,
    MISSES_BEFORE_WAY_OUT,
    SafeAction,
    in_transaction,
    latest_text,
    misses_of,
    order_numbers_in,
    resolve_identity,
    sender_id,
    server_claims,
)
from actions.csat import escalation_events
from actions.prompts import FORM_ANSWERS, TASKS
from actions.replies import language, render, task_label
from bot.services import faq
from bot.services import feedback as feedback_service
from bot.services import identity as identity_service
from bot.services import tickets as ticket_service
from bot.services.errors import InvalidInput
from bot.services.junk import is_junk
from concierge_rasa.multi_request import FLOWS

TASK_SLOTS = (
    "order_number",
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


def order_in_message(tracker: Tracker) -> str | None:
    """The order number the latest message names ("order 190012 arrived broken"), if any."""
    numbers = order_numbers_in((tracker.latest_message or {}).get("entities"))
    return numbers[0] if numbers else None


def order_next_steps(number: str, domain: DomainDict, lang: str = "en") -> list[dict[str, str]]:
    """What a customer usually wants next about an order they complain about. The flows behind the
    buttons check ownership, so the same buttons go to everyone and reveal nothing."""
    order = json.dumps({"order_number": number})
    steps = [
        ("utter_button_return_order", "/get_refund" + order),
        ("utter_button_where_is_order", "/track_order" + order),
        ("utter_button_person", "/contact_human_agent"),
    ]
    return [{"title": render(domain, name, lang, number=number), "payload": payload} for name, payload in steps]


def recent_user_texts(tracker: Tracker, limit: int = 5) -> str:
    texts = [e.get("text") or "" for e in tracker.events if e.get("event") == "user"][-limit:]
    return "\n".join(f"customer: {t[:500]}" for t in texts)


async def open_ticket(
    tracker: Tracker,
    category: str,
    subject: str,
    priority: str = "normal",
    trigger_texts: list[str] | None = None,
) -> Any:
    """Opens (or adds to) the conversation's ticket; InvalidInput when the trigger texts are junk."""
    ident = resolve_identity(tracker)
    return await in_transaction(
        ticket_service.create_ticket,
        sender_id(tracker),
        category,
        subject,
        recent_user_texts(tracker),
        ident.customer_id,
        priority,
        trigger_texts,
        server_claims(tracker).get("client"),  # tickets are capped per client address too
    )


async def is_gold(tracker: Tracker) -> bool:
    """Whether the identified customer is gold tier (their complaints go to a person at once)."""
    customer_id = resolve_identity(tracker).customer_id
    if customer_id is None:
        return False
    profile = await in_transaction(identity_service.get_customer, customer_id)
    return getattr(profile, "tier", None) == "gold"


class ActionRequestHuman(SafeAction):
    def name(self) -> str:
        return "action_request_human"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        try:
            ticket = await open_ticket(
                tracker, "handoff", "Customer asked for a human agent", "high", [latest_text(tracker)]
            )
        except InvalidInput:
            dispatcher.utter_message(response="utter_handoff_what_about")
            return []
        if handoff.config().triggers.asked_for_person:  # a person takes over now; the bot pauses
            paused = await handoff.hand_over(dispatcher, tracker, ticket.number, "asked_for_person")
            return [SlotSet(name, None) for name in TASK_SLOTS] + escalation_events() + paused
        hours = faq.answer("business_hours", language(tracker))
        reply = "utter_handoff_ticket_reused" if ticket.reused else "utter_handoff_ticket_opened"
        dispatcher.utter_message(response=reply, ticket=ticket.number, hours=hours)
        return [SlotSet(name, None) for name in TASK_SLOTS] + escalation_events()


class ActionLogComplaint(SafeAction):
    def name(self) -> str:
        return "action_log_complaint"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = latest_text(tracker)
        try:
            ticket = await open_ticket(tracker, "complaint", text[:120] or "Complaint", "high", [text])
        except InvalidInput:
            dispatcher.utter_message(response="utter_complaint_what_happened")
            return []
        if handoff.config().triggers.gold_complaint and await is_gold(tracker):
            dispatcher.utter_message(response="utter_complaint_gold_handoff")
            return escalation_events() + await handoff.hand_over(dispatcher, tracker, ticket.number, "gold_complaint")
        number = order_in_message(tracker)  # carry-over: never ask for what the message already says
        if number:
            response = "utter_complaint_added_order" if ticket.reused else "utter_complaint_logged_order"
            dispatcher.utter_message(
                response=response, ticket=ticket.number, number=number,
                buttons=order_next_steps(number, domain, language(tracker)),
            )
            return escalation_events() + [SlotSet("order_number", number)]
        response = "utter_complaint_added" if ticket.reused else "utter_complaint_logged"
        dispatcher.utter_message(response=response, ticket=ticket.number)
        return escalation_events()


def fallback_ran_this_turn(events: list[dict[str, Any]]) -> bool:
    """True when action_fallback already ran since the customer's latest message."""
    for event in reversed(events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "action" and event.get("name") == "action_fallback":
            return True
    return False


#: what a misunderstood message may have meant: an intent of FLOWS (concierge_rasa/multi_request.py; two
#: intents of one flow are one choice: "return" and "refund" both open the refund form); each has utter_choice_<intent>
#: intents whose flow takes the order number the message named
ORDER_INTENTS = frozenset({"track_order", "cancel_order", "change_order", "change_shipping_address", "get_refund",
                           "return_item", "track_refund", "get_invoice", "check_invoice", "complaint"})
CHOICE_MIN = 0.08  # an intent below this share of the classifier's belief is no candidate
CHOICES_MIN_TOTAL = 0.2  # the candidates together: below this the classifier knows nothing useful


def clarification_choices(message: dict[str, Any]) -> list[tuple[str, float]]:
    """Up to two intents of different flows the misunderstood message most likely meant (issue 25:
    "Do you want to X or Y?" instead of asking to rephrase), from the classifier's ranking."""
    ranking = [r for r in (message.get("intent_ranking") or []) if isinstance(r, dict)]
    picked: list[tuple[str, float]] = []
    flows: set[str] = set()
    for entry in ranking[:4]:
        name, confidence = entry.get("name"), float(entry.get("confidence") or 0.0)
        if name not in FLOWS or confidence < CHOICE_MIN or FLOWS[name] in flows:
            continue
        picked.append((name, confidence))
        flows.add(FLOWS[name])
        if len(picked) == 2:
            break
    return picked if sum(c for _, c in picked) >= CHOICES_MIN_TOTAL else []


def clarify(dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> bool:
    """Asks which of the likely meanings the customer wants, with a button each; False when the
    message gives nothing to choose from (junk, or no task the classifier leans to)."""
    message = tracker.latest_message or {}
    if is_junk(latest_text(tracker)):
        return False
    choices = clarification_choices(message)
    if not choices:
        return False
    lang = language(tracker)
    number = order_in_message(tracker)
    labels, buttons = [], []
    for intent, _ in choices:
        label = render(domain, f"utter_choice_{intent}", lang) or intent.replace("_", " ")
        labels.append(label)
        carried = json.dumps({"order_number": number}) if number and intent in ORDER_INTENTS else ""
        buttons.append({"title": label[:1].upper() + label[1:], "payload": f"/{intent}{carried}"})
    if len(labels) == 2:
        dispatcher.utter_message(response="utter_clarify_two", first=labels[0], second=labels[1], buttons=buttons)
    else:
        dispatcher.utter_message(response="utter_clarify_one", first=labels[0], buttons=buttons)
    return True


class ActionFallback(SafeAction):
    """First misunderstanding: "Do you want to X or Y?" with buttons when the classifier leans to tasks,
    else ask to rephrase. Second in a row: a ticket for a human, unless junk.

    Junk (empty, gibberish, oversized, injection strings) never opens a ticket: the customer is
    only asked to rephrase, and nothing promises a human reply.
    """

    def name(self) -> str:
        return "action_fallback"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if fallback_ran_this_turn(tracker.events):
            # Rasa's core fallback picked this action again in the same turn (no policy was sure what
            # follows it, e.g. after a form rejected the answer): it would loop until Rasa's limit of
            # predictions and the customer got an error. The customer was already asked to rephrase:
            # the form asks its question again, or the bot listens.
            return [FollowupAction(tracker.active_loop_name or "action_listen")]
        form, requested = tracker.active_loop_name, tracker.get_slot("requested_slot")
        if form and requested in UNFIT_ANSWER:
            # "abc" where an order number or an email is asked: an answer that doesn't fit (what the value
            # looks like, counted, a way out), not a misunderstanding that hands over at the second
            return unfit_answer(dispatcher, tracker, str(form), str(requested))
        streak: list[str] = []
        for event in reversed(tracker.events):
            if event.get("event") != "user":
                continue
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent != "nlu_fallback":
                break
            streak.append(str(event.get("text") or ""))
        rephrase = "utter_rephrase"
        needed = handoff.config().triggers.fallbacks  # misunderstood messages in a row that hand over
        if needed == 0 or len(streak) < max(needed, 2):
            if len(streak) > 1 or not clarify(dispatcher, tracker, domain):  # a second miss: no more guessing
                dispatcher.utter_message(response=rephrase)
            return []
        try:  # the two latest misunderstood messages must both be something a person meant to say
            ticket = await open_ticket(
                tracker, "fallback", "Assistant could not understand the customer", trigger_texts=streak[:2]
            )
        except InvalidInput:
            dispatcher.utter_message(response=rephrase)
            return []
        if not ticket.reused or ticket.status == "open":  # a person takes over now
            dispatcher.utter_message(response="utter_still_not_understanding")
            return escalation_events() + await handoff.hand_over(dispatcher, tracker, ticket.number, "fallbacks")
        if not ticket.reused:
            dispatcher.utter_message(response="utter_fallback_ticket_opened", ticket=ticket.number)
        else:
            dispatcher.utter_message(response="utter_fallback_ticket_reused", ticket=ticket.number)
        return escalation_events()


class ActionStopTask(SafeAction):
    def name(self) -> str:
        return "action_stop_task"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_task_stopped")
        return [SlotSet(name, None) for name in TASK_SLOTS]


#: what is said when an answer does not fit the question (nothing could be taken from it)
UNFIT_ANSWER = {"order_number": "utter_order_number_malformed", "email": "utter_email_malformed"}


class ActionHandleInform(SafeAction):
    """A bare value ("104233") outside any task: ask what to do with it; a message that says no more
    than "my order" gets the main tasks as buttons.

    Inside a form it is an answer the form could not use ("12345" for an order number): say why,
    count it, offer a way out after two, and stop asking after three (issue 25).
    """

    def name(self) -> str:
        return "action_handle_inform"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form, requested = tracker.active_loop_name, tracker.get_slot("requested_slot")
        if form and requested:
            return unfit_answer(dispatcher, tracker, str(form), str(requested))
        # the customer's own values: not the language entity the NLU adds when a client names its language
        entities = {e.get("entity") for e in (tracker.latest_message or {}).get("entities") or []} - {"language"}
        number = tracker.get_slot("order_number")
        if "order_number" in entities and number:
            order = json.dumps({"order_number": number})  # the button carries the number: nothing asked twice
            lang = language(tracker)
            steps = [("utter_button_where_is_it", "/track_order"), ("utter_button_cancel_it", "/cancel_order"),
                     ("utter_button_return_it", "/get_refund"), ("utter_button_invoice", "/get_invoice")]
            dispatcher.utter_message(
                response="utter_inform_order",
                number=number,
                buttons=[{"title": render(domain, name, lang), "payload": intent + order} for name, intent in steps],
            )
        elif entities:  # an email or a product alone: the customer knows what it is for
            dispatcher.utter_message(response="utter_inform_other")
        else:  # "something about my order", "the package": nothing to thank for, the main tasks to pick
            dispatcher.utter_message(response="utter_inform_unclear")
        return []


def unfit_answer(dispatcher: CollectingDispatcher, tracker: Tracker, form: str, requested: str) -> list[EventType]:
    """An answer the running form could not use: explained and counted; the third leaves the form."""
    label = TASKS.get(form, ("request", ""))[0]
    misses = misses_of(tracker, requested) + 1
    if misses >= MAX_MISSES:
        dispatcher.utter_message(response="utter_repair_give_up", task=task_label(label, tracker))
        cleared = [SlotSet(name, None) for name in FORM_ANSWERS if name != "repair_misses"]
        return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("repair_misses", None), *cleared]
    dispatcher.utter_message(response=UNFIT_ANSWER.get(requested, "utter_answer_unfit"))
    if misses >= MISSES_BEFORE_WAY_OUT:
        dispatcher.utter_message(response="utter_repair_way_out", task=task_label(label, tracker))
    return [SlotSet("repair_misses", f"{requested}:{misses}")]


_RATING_CORRECTION = re.compile(
    r"\b(?:make (?:that|it)|change (?:that|it|my rating) to|(?:i )?meant|rather|actually)\b[^0-9]{0,12}"
    r"(?P<rating>[1-5])(?:\s*(?:/\s*5|stars?|out of 5))?(?=\s*(?:[,.!;]|$))",  # "actually 2 items broke" is a comment
    re.I,
)


class ValidateFeedbackForm(FormValidationAction):
    def name(self) -> str:
        return "validate_feedback_form"

    async def extract_feedback_rating(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Correction: "no actually make that a 5" where the comment is asked changes the rating
        (and the comment is asked again, not taken from the correction)."""
        if tracker.get_slot("requested_slot") != "feedback_comment":
            return {}
        text = latest_text(tracker)
        found = _RATING_CORRECTION.search(text)
        if not found:
            return {}
        rating = feedback_service.parse_rating(found.group("rating"))
        if rating is None or str(rating) == str(tracker.get_slot("feedback_rating")):
            return {}
        return {"feedback_rating": str(rating), "feedback_comment": None}

    async def validate_feedback_rating(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # the feedback service reads ratings as customers type them ("4/5", "four", "五分", "★★★")
        rating = feedback_service.parse_rating(str(value or "")[:100])
        if rating is None:
            dispatcher.utter_message(response="utter_feedback_rating_invalid")
            return {"feedback_rating": None}
        return {"feedback_rating": str(rating)}

    async def validate_feedback_comment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:
            return {"feedback_comment": None}  # cleared by a corrected rating: asked again
        text = " ".join(str(value or "").split())[:2000]
        return {"feedback_comment": "" if feedback_service.is_skip(text) else text}


class ActionAskFeedbackRating(SafeAction):
    def name(self) -> str:
        return "action_ask_feedback_rating"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_feedback_rating_question")  # buttons 5 to 1 in the response
        return []


class ActionAskFeedbackComment(SafeAction):
    def name(self) -> str:
        return "action_ask_feedback_comment"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_feedback_comment_question")
        return []


class ActionSaveFeedback(SafeAction):
    def name(self) -> str:
        return "action_save_feedback"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = [SlotSet("feedback_rating", None), SlotSet("feedback_comment", None)]
        rating = tracker.get_slot("feedback_rating")
        if not rating:
            return reset
        ident = resolve_identity(tracker)
        await in_transaction(
            feedback_service.record_feedback,
            sender_id(tracker),
            ident.customer_id,
            rating,  # the service checks it (1-5; "Please rate from 1 to 5." otherwise): int() here crashed on text
            tracker.get_slot("feedback_comment") or "",
        )
        if int(rating) <= 2:
            ticket = await open_ticket(tracker, "feedback", f"Low rating ({rating}/5)", "high")
            dispatcher.utter_message(response="utter_feedback_low_followup", ticket=ticket.number)
            return reset + escalation_events()
        dispatcher.utter_message(response="utter_feedback_thanks")
        return reset
