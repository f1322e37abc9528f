"""The offer of a human to a customer who is clearly upset (predicted by concierge_rasa.upset_policy).

Why it reverts itself: the policy runs this action right after the customer's message, before the
normal answer. Ending with Rasa's ``ActionReverted`` lets the other policies see the conversation
as it was after the message and answer it as usual; the offer's message stays in the tracker and
the event stream. The escalation is noted as a ticket (category ``upset``; the conversation's
open ticket when there is one), so an agent sees it and the bot asks no CSAT afterwards.
"""

from __future__ import annotations

import logging

from rasa_sdk import Tracker
from rasa_sdk.events import ActionReverted, EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import handoff
from actions.common import SafeAction
from actions.csat import escalation_events
from actions.support import open_ticket
from bot.services.errors import InvalidInput

logger = logging.getLogger(__name__)
STREAK_MESSAGES = 2  # the messages shown to the agent as the reason (the policy's streak)


def latest_user_texts(tracker: Tracker, limit: int) -> list[str]:
    """The customer's last ``limit`` messages, oldest first."""
    texts = [str(e.get("text") or "") for e in tracker.events or [] if e.get("event") == "user"]
    return texts[-limit:]


class ActionOfferHuman(SafeAction):
    def name(self) -> str:
        return "action_offer_human"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        if not any(e.get("event") == "undo" for e in events):  # even after an error: answer as usual
            events.insert(0, ActionReverted())
        return events

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        texts = latest_user_texts(tracker, STREAK_MESSAGES)
        mode = handoff.config().triggers.negative_sentiment  # offer | escalate | off (bot/content/handoff.yml)
        if mode == "off":
            return [ActionReverted()]
        if mode == "offer":
            dispatcher.utter_message(response="utter_upset_offer")
        try:
            ticket = await open_ticket(
                tracker, "upset", "Customer upset several messages in a row: offered a human agent", "high", texts
            )
        except InvalidInput:  # junk never opens a ticket by itself; the offer stands
            return [ActionReverted()]
        except Exception:  # noqa: BLE001 - the offer was made; the answer must still follow
            logger.exception("Could not note the upset customer's escalation (%s)", tracker.sender_id)
            return [ActionReverted()]
        # after the revert, so that they stay applied
        if mode == "escalate":  # a person takes over at once: the bot pauses instead of answering
            return [ActionReverted(), *escalation_events(), *await handoff.hand_over(
                dispatcher, tracker, ticket.number, "negative_sentiment")]
        return [ActionReverted(), *escalation_events()]
