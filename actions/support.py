"""Support: human hand-over requests, complaints, feedback, fallback and task control."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import handoff
from actions.common import SafeAction, in_transaction, resolve_identity, sender_id, server_claims
from actions.csat import escalation_events
from bot.services import faq
from bot.services import feedback as feedback_service
from bot.services import identity as identity_service
from bot.services import tickets as ticket_service
from bot.services.errors import InvalidInput

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
)
RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
SKIP_RE = re.compile(r"^\s*(no|nope|nah|no thanks|nothing|skip|n/a|none|-)\s*[.!]*\s*$", re.I)


def latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


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
            dispatcher.utter_message(
                text="I can pass you to our support team. Could you tell me in a few words what it's about?"
            )
            return []
        if handoff.config().triggers.asked_for_person:  # a person takes over now; the bot pauses
            paused = await handoff.hand_over(dispatcher, tracker, ticket.number, "asked_for_person")
            return [SlotSet(name, None) for name in TASK_SLOTS] + escalation_events() + paused
        if ticket.reused:
            dispatcher.utter_message(
                text=f"Our support team already has this conversation (ticket {ticket.number}) and will take "
                f"over here. {faq.answer('business_hours')}"
            )
        else:
            dispatcher.utter_message(
                text=f"I've asked our support team to take over this conversation (ticket {ticket.number}). "
                f"{faq.answer('business_hours')}"
            )
        return [SlotSet(name, None) for name in TASK_SLOTS] + escalation_events()


class ActionLogComplaint(SafeAction):
    def name(self) -> str:
        return "action_log_complaint"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = latest_text(tracker)
        try:
            ticket = await open_ticket(tracker, "complaint", text[:120] or "Complaint", "high", [text])
        except InvalidInput:
            dispatcher.utter_message(
                text="I'm sorry something went wrong. Could you tell me in a few words what happened?"
            )
            return []
        if handoff.config().triggers.gold_complaint and await is_gold(tracker):
            dispatcher.utter_message(text="I'm really sorry about this. Let me get a colleague for you right away.")
            return escalation_events() + await handoff.hand_over(dispatcher, tracker, ticket.number, "gold_complaint")
        if ticket.reused:
            dispatcher.utter_message(
                text=f"I'm really sorry about this. I've added it to your open ticket {ticket.number}, so the "
                "colleague handling it sees everything."
            )
        else:
            dispatcher.utter_message(
                text=f"I'm really sorry about this. I've logged your complaint as ticket {ticket.number} and our "
                "team will get back to you within one business day. If it's about a specific order, tell me the "
                'order number and I\'ll check it right away, or type "human" to talk to a person now.'
            )
        return escalation_events()


class ActionFallback(SafeAction):
    """First misunderstanding: ask to rephrase. Second in a row: a ticket for a human, unless junk.

    Junk (empty, gibberish, oversized, injection strings) never opens a ticket: the customer is
    only asked to rephrase, and nothing promises a human reply.
    """

    def name(self) -> str:
        return "action_fallback"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        streak: list[str] = []
        for event in reversed(tracker.events):
            if event.get("event") != "user":
                continue
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent != "nlu_fallback":
                break
            streak.append(str(event.get("text") or ""))
        rephrase = (
            "Sorry, I didn't quite get that. Could you say it another way? For example: "
            '"where is my order?" or "I want to return an item".'
        )
        needed = handoff.config().triggers.fallbacks  # misunderstood messages in a row that hand over
        if needed == 0 or len(streak) < max(needed, 2):
            dispatcher.utter_message(text=rephrase)
            return []
        try:  # the two latest misunderstood messages must both be something a person meant to say
            ticket = await open_ticket(
                tracker, "fallback", "Assistant could not understand the customer", trigger_texts=streak[:2]
            )
        except InvalidInput:
            dispatcher.utter_message(text=rephrase)
            return []
        if not ticket.reused or ticket.status == "open":  # a person takes over now
            dispatcher.utter_message(text="I'm sorry, I'm still not understanding you.")
            return escalation_events() + await handoff.hand_over(dispatcher, tracker, ticket.number, "fallbacks")
        if not ticket.reused:
            dispatcher.utter_message(
                text="I'm sorry, I'm still not understanding. I've asked a colleague from our support team to "
                f"look at this conversation (ticket {ticket.number}); they'll reply here or by email."
            )
        else:
            dispatcher.utter_message(
                text=f"Sorry, I still don't follow. A colleague from our support team will look at this "
                f"conversation soon (ticket {ticket.number}). Meanwhile you can ask me about orders, refunds, "
                "deliveries, payments or your account."
            )
        return escalation_events()


class ActionStopTask(SafeAction):
    def name(self) -> str:
        return "action_stop_task"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text="No problem, I've stopped that. Is there anything else I can help with?")
        return [SlotSet(name, None) for name in TASK_SLOTS]


class ActionHandleInform(SafeAction):
    """A bare value ("104233") outside any task: ask what to do with it."""

    def name(self) -> str:
        return "action_handle_inform"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entities = {e.get("entity") for e in (tracker.latest_message or {}).get("entities") or []}
        number = tracker.get_slot("order_number")
        if "order_number" in entities and number:
            dispatcher.utter_message(
                text=f"What would you like to do with order {number}?",
                buttons=[
                    {"title": "Where is it?", "payload": "/track_order"},
                    {"title": "Cancel it", "payload": "/cancel_order"},
                    {"title": "Return or refund", "payload": "/get_refund"},
                    {"title": "Get the invoice", "payload": "/get_invoice"},
                ],
            )
        else:
            dispatcher.utter_message(text="Thanks! What would you like me to do with that?")
        return []


class ValidateFeedbackForm(FormValidationAction):
    def name(self) -> str:
        return "validate_feedback_form"

    async def validate_feedback_rating(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip().lower()[:100]
        match = re.search(r"\b([1-5])\b", text)
        words = re.findall(r"[a-z]+", text)  # whole words: "one" in "honestly" or "none" is no rating
        rating = int(match.group(1)) if match else next((n for w, n in RATING_WORDS.items() if w in words), None)
        if rating is None:
            dispatcher.utter_message(text="Please pick a number from 1 to 5.")
            return {"feedback_rating": None}
        return {"feedback_rating": str(rating)}

    async def validate_feedback_comment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = " ".join(str(value or "").split())[:2000]
        return {"feedback_comment": "" if SKIP_RE.match(text) else text}


class ActionAskFeedbackRating(SafeAction):
    def name(self) -> str:
        return "action_ask_feedback_rating"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(
            text="How would you rate your experience with us, from 1 (poor) to 5 (excellent)?",
            buttons=[{"title": str(n), "payload": str(n)} for n in (5, 4, 3, 2, 1)],
        )
        return []


class ActionAskFeedbackComment(SafeAction):
    def name(self) -> str:
        return "action_ask_feedback_comment"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text='Thanks! Anything you\'d like to tell us? (Type "no" to skip.)')
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
            dispatcher.utter_message(
                text=f"Thank you for telling us, and I'm sorry we let you down. A team lead will follow up "
                f"(ticket {ticket.number})."
            )
            return reset + escalation_events()
        dispatcher.utter_message(text="Thank you for your feedback! It goes straight to our team.")
        return reset
