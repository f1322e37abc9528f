"""CSAT: after the bot resolved a request, ask once for a 1-5 rating and an optional comment.

Why this shape: the action that resolved the request knows it succeeded, so it returns
``csat_offer(tracker)`` (``csat_due``); rules in nlu_data/rules/csat.yml start ``csat_form`` on
that slot. The form asks once per conversation (``csat_asked``) and never after an escalation
(``escalated``, set when a ticket is opened: the agent's resolution asks instead). A customer who
ignores the question and asks something else leaves the form (generated digression rules), and
"no"/"skip" ends it. ``csat_rating``/``csat_comment`` stay set, so the event stream carries the
conversation's CSAT; the rating is also stored in ``feedback`` with the conversation and customer.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import SafeAction, in_transaction, latest_user_metadata, resolve_identity, sender_id
from bot.services import feedback as feedback_service
from concierge_rasa.multi_request import REQUESTS_WAITING

FORM = "csat_form"
MAX_COMMENT = 1000


def csat_offer(tracker: Tracker) -> list[EventType]:
    """Events a resolving action returns on success: CSAT is due unless asked or escalated.

    Always an explicit ``csat_due`` (true or false): the rules after each resolving action
    (nlu_data/rules/csat.yml) branch on it, so the next step never depends on a guess. Not due while
    another request of the customer's message waits (the channels' ``REQUESTS_WAITING``): the rating
    question would come between the two answers.
    """
    waiting = bool(latest_user_metadata(tracker).get(REQUESTS_WAITING))  # asked after the customer's last request
    due = not (tracker.get_slot("csat_asked") or tracker.get_slot("escalated") or waiting)
    return [SlotSet("csat_due", due)]


def escalation_events() -> list[EventType]:
    """Events of an action that opened a ticket: no CSAT from the bot in this conversation."""
    return [SlotSet("escalated", True), SlotSet("csat_due", False)]


def _intent(tracker: Tracker) -> str | None:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def _answers_since_asked(tracker: Tracker) -> int:
    """Customer messages since the form started (the first one may get a second chance)."""
    count = 0
    for event in reversed(tracker.events or []):
        if event.get("event") == "active_loop" and event.get("name") == FORM:
            break
        if event.get("event") == "user":
            count += 1
    return count


class ValidateCsatForm(FormValidationAction):
    def name(self) -> str:
        return "validate_csat_form"

    async def validate_csat_rating(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "")[:200]
        if _intent(tracker) == "deny" or feedback_service.is_skip(text):
            return {"csat_rating": None, "requested_slot": None}  # skipped: action_save_csat says so
        rating = feedback_service.parse_rating(text)
        if rating is not None:
            return {"csat_rating": str(rating)}
        if _answers_since_asked(tracker) <= 1:
            dispatcher.utter_message(response="utter_csat_rating_invalid")
            return {"csat_rating": None}
        return {"csat_rating": None, "requested_slot": None}  # twice no rating: don't insist

    async def validate_csat_comment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = " ".join(str(value or "").split())[:MAX_COMMENT]
        if _intent(tracker) == "deny" or feedback_service.is_skip(text):
            return {"csat_comment": ""}
        return {"csat_comment": text}


class ActionAskCsatRating(SafeAction):
    def name(self) -> str:
        return "action_ask_csat_rating"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        # the rating buttons (5 to 1, then skip) are part of the responses, in each language
        if tracker.get_slot("csat_asked"):
            dispatcher.utter_message(response="utter_csat_rating_again")
        else:
            dispatcher.utter_message(response="utter_csat_rating_question")
        return [SlotSet("csat_due", False), SlotSet("csat_asked", True)]


class ActionAskCsatComment(SafeAction):
    def name(self) -> str:
        return "action_ask_csat_comment"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_csat_comment_question")
        return []


class ActionSaveCsat(SafeAction):
    def name(self) -> str:
        return "action_save_csat"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        rating = feedback_service.parse_rating(tracker.get_slot("csat_rating"))
        if rating is None:
            dispatcher.utter_message(response="utter_csat_skipped")
            return [SlotSet("csat_due", False)]
        comment = str(tracker.get_slot("csat_comment") or "")[:MAX_COMMENT]
        ident = resolve_identity(tracker)
        await in_transaction(
            feedback_service.record_feedback, sender_id(tracker), ident.customer_id, rating, comment
        )
        dispatcher.utter_message(response="utter_csat_thanks_low" if rating <= 2 else "utter_csat_thanks")
        return [*ident.events, SlotSet("csat_due", False)]
