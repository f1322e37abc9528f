"""Handing a conversation to a person: the summary from the tracker, the wait message, the pause.

Why here: every trigger (asked for a person, fallbacks, upset, gold complaint, failed action; which
are on is in bot/content/handoff.yml) ends the same way: the handoff is stored with what the agent
needs (bot/services/handoff.py), the customer hears what happens next, and Rasa's
``ConversationPaused`` stops the bot. The customer's messages still reach the tracker, the event
stream and so the CRM and the agent's console; the console resumes the conversation.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused, EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.context import in_transaction, resolve_identity, sender_id
from bot.services import handoff as handoff_service
from bot.services import tickets as ticket_service

logger = logging.getLogger(__name__)
SUMMARY_SLOTS = (
    "order_number", "refund_item", "refund_reason", "new_address", "new_email", "email", "product",
    "verified_customer_id", "csat_rating",
)


def config() -> handoff_service.HandoffConfig:
    return handoff_service.load_config()


def context(tracker: Tracker, ticket_number: str, reason: str) -> handoff_service.EscalationContext:
    """What the tracker says about the conversation, for the summary and the transcript."""
    transcript: list[tuple[str, str]] = []
    intents: list[str] = []
    sentiments: list[tuple[str, float]] = []
    for event in tracker.events or []:
        kind = event.get("event")
        if kind == "user":
            transcript.append(("user", str(event.get("text") or "")))
            parse = event.get("parse_data") or {}
            name = (parse.get("intent") or {}).get("name")
            if name:
                intents.append(str(name))
            sentiment = parse.get("sentiment") or {}
            probs = sentiment.get("probabilities") or {}
            if sentiment.get("label"):
                sentiments.append((str(sentiment["label"]), float(probs.get("negative", 0.0) or 0.0)))
        elif kind == "bot" and event.get("text"):
            transcript.append(("bot", str(event.get("text"))))
    slots: dict[str, Any] = {name: tracker.get_slot(name) for name in SUMMARY_SLOTS if tracker.slots.get(name)}
    return handoff_service.EscalationContext(
        sender_id=sender_id(tracker),
        ticket_number=ticket_number,
        reason=reason,
        channel=tracker.get_latest_input_channel(),
        customer_id=resolve_identity(tracker).customer_id,
        transcript=transcript,
        intents=intents,
        sentiments=sentiments,
        slots=slots,
    )


async def hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, ticket_number: str, reason: str
) -> list[EventType]:
    """Stores the handoff, tells the customer what happens next and pauses the bot."""
    info = await in_transaction(handoff_service.escalate, context(tracker, ticket_number, reason))
    # the service words it in English ({message}); the Chinese variation of each case is in the domain
    if info.after_hours:
        case = "after_hours"
    elif info.agents_online == 0 or info.wait_minutes is None:
        case = "busy"
    else:
        case = "next" if info.position <= 1 else "queue"
    dispatcher.utter_message(
        response=f"utter_handoff_waiting_{case}", message=info.message, ticket=info.ticket_number,
        position=info.position, minutes=info.wait_minutes,
    )
    return [ConversationPaused()]


async def hand_over_failure(dispatcher: CollectingDispatcher, tracker: Tracker, action: str) -> list[EventType]:
    """An action failed: a ticket and a handoff when configured; nothing (and no new error) otherwise."""
    if not config().triggers.action_failed:
        return []
    try:
        ticket = await in_transaction(
            ticket_service.create_ticket,
            sender_id(tracker),
            "action_failed",
            f"The assistant failed while running {action}",
            "",
            resolve_identity(tracker).customer_id,
            "high",
        )
        return await hand_over(dispatcher, tracker, ticket.number, "action_failed")
    except Exception:  # noqa: BLE001 - the database may be what failed: the apology already went out
        logger.exception("Could not hand over after %s failed (%s)", action, tracker.sender_id)
        return []
