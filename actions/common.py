"""Shared plumbing for the actions: the base classes (safe replies, order forms), formatting.

Actions stay thin: they translate the tracker into arguments, call a service in `bot/`
inside `in_transaction`, and turn the returned dataclasses into messages. Identity, the
sender id and the transaction helper live in actions/context.py (re-exported here) and are
resolved once per action run (``action_run``).
"""

from __future__ import annotations

import contextvars
import logging
from abc import ABCMeta, abstractmethod
from datetime import datetime
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.context import (
    Identity,
    action_run,
    customer_identity,
    email_typed_in_this_session,
    forget_identity,
    in_transaction,
    latest_user_metadata,
    resolve_identity,
    sender_id,
    server_claims,
)
from actions.handoff import hand_over_failure
from bot.services import verification as verification_service
from bot.services.errors import NotAllowed, NotFound, ServiceError
from bot.services.orders import get_order, normalize_order_number

__all__ = [  # the helpers every action module imports from here (defined in actions/context.py)
    "Identity", "email_typed_in_this_session", "in_transaction", "latest_user_metadata", "resolve_identity",
    "sender_id", "server_claims",
]

logger = logging.getLogger(__name__)

TECHNICAL_PROBLEM = (
    "Sorry, I ran into a technical problem and couldn't finish that. Please try again in a moment, "
    'or type "human" to reach our support team.'
)
MAX_VERIFICATION_ATTEMPTS = 3


def previous_slot_value(tracker: Tracker, name: str) -> Any:
    """The slot's value before the latest user message (ignores what this turn extracted)."""
    events = tracker.events or []
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=len(events))
    for event in reversed(events[:last_user]):
        if event.get("event") == "slot" and event.get("name") == name:
            return event.get("value")
    return None


def chat_verified(customer_id: int) -> list[EventType]:
    return [
        SlotSet("verified_customer_id", str(customer_id)),
        SlotSet("verified_by", "chat"),
        SlotSet("verification_attempts", 0),
    ]


# ---------------------------------------------------------------- formatting
def fmt_date(value: datetime | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:%a %d %b %Y}".replace(" 0", " ")


class SafeAction(Action, metaclass=ABCMeta):
    """Base for actions: any unexpected error becomes a polite reply, never silence."""

    @abstractmethod
    def name(self) -> str: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        with action_run():  # the identity service is asked once in this run
            try:
                return await self.act(dispatcher, tracker, domain)
            except ServiceError as exc:
                dispatcher.utter_message(text=exc.message)
                return []
            except Exception:  # noqa: BLE001 - log it, apologise, keep the conversation going
                logger.exception("Action %s failed", self.name())
                dispatcher.utter_message(text=TECHNICAL_PROBLEM)
                # a person takes over when configured (handoff.yml)
                return await hand_over_failure(dispatcher, tracker, self.name())

    @abstractmethod
    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        """The action's work; ServiceError messages are shown to the customer as they are."""


# ---------------------------------------------------------------- forms about one order
_stop_form: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("stop_form", default=None)


def stop_form() -> None:
    """Ends the running form after this validation step (the refusal was already explained)."""
    flags = _stop_form.get()
    if flags is not None:
        flags.append(True)


class OrderFormValidator(FormValidationAction, metaclass=ABCMeta):
    """Validation shared by every form that acts on one of the customer's orders.

    Order number first; if the customer is not verified yet, the email on that order
    proves ownership. An unknown order and someone else's order get the same answer,
    so order numbers cannot be probed.
    """

    #: verified customers may skip the order number (e.g. "where is my order?" lists recent ones)
    order_optional_when_verified = False

    @abstractmethod
    def name(self) -> str: ...

    def check_order(self, session: Any, customer_id: int, order_number: str) -> Any:
        """Raises NotFound/NotAllowed when this form cannot act on the order. Override."""
        return get_order(session, customer_id, order_number)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        flags: list[bool] = []
        token = _stop_form.set(flags)
        try:
            with action_run():  # the identity service is asked once in this run (again after a verification)
                ident = resolve_identity(tracker)
                events = ident.events + await super().run(dispatcher, tracker, domain)
        except Exception:  # noqa: BLE001
            logger.exception("Form validation %s failed", self.name())
            dispatcher.utter_message(text=TECHNICAL_PROBLEM)
            flags.append(True)
            events = []
        finally:
            _stop_form.reset(token)
        if flags:
            events.append(SlotSet("requested_slot", None))
        return events

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        ident = resolve_identity(tracker)
        slots = list(domain_slots)
        if ident.customer_id is not None:
            slots = [s for s in slots if s != "email"]
            if self.order_optional_when_verified and not tracker.get_slot("order_number"):
                slots = [s for s in slots if s != "order_number"]
        return slots

    async def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        requested = tracker.get_slot("requested_slot")
        previous = previous_slot_value(tracker, "order_number")
        if requested and requested != "order_number" and previous:
            # a 6-digit number inside another answer (a postcode, say) must not switch orders mid-task
            return {"order_number": previous}
        number = normalize_order_number(value if isinstance(value, str) else str(value or ""))
        if not number:
            dispatcher.utter_message(
                text="That doesn't look like one of our order numbers: they have 6 digits, like 104233. "
                "You'll find it in your order confirmation email."
            )
            return {"order_number": None}
        ident = resolve_identity(tracker)
        if ident.customer_id is not None:
            return await self._check(number, ident.customer_id, dispatcher)
        email = tracker.get_slot("email")
        if email and not email_typed_in_this_session(tracker, email):  # remembered from another client
            return {"order_number": number, "email": None}
        if email:  # the email came first (or in the same message): verify now
            return await self._verify(number, str(email), tracker, dispatcher)
        return {"order_number": number}  # ownership is proven with the email next

    async def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        ident = resolve_identity(tracker)
        number = tracker.get_slot("order_number")
        if ident.customer_id is not None or not number:
            return {"email": value}
        if not email_typed_in_this_session(tracker, value):  # prefilled from another client session: ask again
            return {"email": None}
        return await self._verify(str(number), str(value or ""), tracker, dispatcher)

    async def _verify(
        self, number: str, email: str, tracker: Tracker, dispatcher: CollectingDispatcher
    ) -> dict[str, Any]:
        email = email.strip()[:254]
        try:
            attempts = int(tracker.get_slot("verification_attempts") or 0)
        except (TypeError, ValueError):
            attempts = MAX_VERIFICATION_ATTEMPTS
        # once locked, no more checks in this conversation: restarting the form must not allow more guesses;
        # across conversations the database counts failures per order number and client address
        check = verification_service.ChatCheck(None)
        if attempts < MAX_VERIFICATION_ATTEMPTS:
            known = customer_identity(tracker)
            check = await in_transaction(
                verification_service.verify_in_chat, sender_id(tracker), known.session_id, known.client, number, email
            )
        customer_id = check.customer_id
        if customer_id is None and check.wait_s > 0:
            dispatcher.utter_message(text=verification_service.wait_message(check.wait_s))
            stop_form()
            return {"order_number": None, "email": None, "verification_attempts": attempts + int(check.checked)}
        if customer_id is None:
            attempts += 1
            if attempts >= MAX_VERIFICATION_ATTEMPTS:
                dispatcher.utter_message(
                    text="I'm sorry, I couldn't verify that order with that email, so for your security I "
                    "can't go on with this request. Type \"human\" if you'd like our support team to help."
                )
                stop_form()
            else:
                dispatcher.utter_message(
                    text="I couldn't match that order number with that email address. For your security I "
                    "can only help with orders placed with your email. Let's try again."
                )
            return {"order_number": None, "email": None, "verification_attempts": attempts}
        forget_identity(tracker)  # verified now: a later question in this run asks the service again
        result = await self._check(number, customer_id, dispatcher)
        slots: dict[str, Any] = {"email": email, **result}
        slots.update({e["name"]: e["value"] for e in chat_verified(customer_id)})
        return slots

    async def _check(self, number: str, customer_id: int, dispatcher: CollectingDispatcher) -> dict[str, Any]:
        try:
            await in_transaction(self.check_order, customer_id, number)
        except NotFound:
            dispatcher.utter_message(
                text=f"I couldn't find order #{number} on your account. Could you check the number?"
            )
            return {"order_number": None}
        except NotAllowed as exc:
            dispatcher.utter_message(text=exc.message)
            stop_form()
            return {"order_number": number}
        return {"order_number": number}
