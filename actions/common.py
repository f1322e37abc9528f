"""Shared plumbing for the actions: the base classes (safe replies, order forms), formatting.

Actions stay thin: they translate the tracker into arguments, call a service in `bot/`
inside `in_transaction`, and turn the returned dataclasses into messages. Identity, the
sender id and the transaction helper live in actions/context.py (re-exported here) and are
resolved once per action run (``action_run``).
"""

from __future__ import annotations

import contextvars
import logging
import re
from abc import ABCMeta, abstractmethod
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecutionRejected, EventType, SlotSet
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
from actions.replies import reply_error, task_label
from bot.services import verification as verification_service
from bot.services.errors import NotAllowed, NotFound, ServiceError
from bot.services.orders import get_order, normalize_order_number

__all__ = [  # the helpers every action module imports from here (defined in actions/context.py)
    "Identity", "email_typed_in_this_session", "in_transaction", "latest_user_metadata", "resolve_identity",
    "sender_id", "server_claims",
]

logger = logging.getLogger(__name__)

MAX_VERIFICATION_ATTEMPTS = 3
#: answers that don't fit the same question before the form stops asking it (issue 25: never more
#: than three times in a row); after MISSES_BEFORE_WAY_OUT the customer is offered to stop or a person
MAX_MISSES = 3
MISSES_BEFORE_WAY_OUT = 2
#: requests that leave the running form for another task (the form's own intents excepted); rules in
#: nlu_data/rules/digressions.yml (scripts/gen_digression_rules.py) deactivate the form and start it
TASK_SWITCH_INTENTS = (
    "track_order",
    "cancel_order",
    "track_refund",
    "get_refund",
    "return_item",
    "check_invoice",
    "get_invoice",
    "change_shipping_address",
    "recommend_products",
)
#: words that mark a new order number as a correction of the earlier one ("sorry, I meant 190003")
CORRECTION_RE = re.compile(
    r"\b(meant|mean|wrong|oops|typo|mistake|instead|correction|my bad|scratch that|should (be|have been)|"
    r"not that one|sorry)\b|不对|说错|搞错|打错|写错|输错|弄错|应该是|更正",  # Chinese has no \b between words
    re.I,
)


def previous_slot_value(tracker: Tracker, name: str) -> Any:
    """The slot's value before the latest user message (ignores what this turn extracted)."""
    events = tracker.events or []
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=len(events))
    for event in reversed(events[:last_user]):
        if event.get("event") == "slot" and event.get("name") == name:
            return event.get("value")
    return None


#: requests that are no free-text answer either (a refund reason, a feedback comment may say "it never
#: arrived", which reads as tracking; "recommend me something instead" is no reason)
NEVER_AN_ANSWER = ("recommend_products", "get_invoice", "check_invoice")


def latest_text(tracker: Tracker) -> str:
    """The text of the customer's latest message ("" when there is none)."""
    return str((tracker.latest_message or {}).get("text") or "")


def order_numbers_in(entities: list[dict[str, Any]] | None) -> list[str]:
    """The order numbers of a message's entities, normalised, each once, in order ("190009 and #190010")."""
    numbers = (normalize_order_number(str(e.get("value") or "")) for e in entities or []
               if e.get("entity") == "order_number")
    return list(dict.fromkeys(n for n in numbers if n))


def confirm_value(value: Any) -> bool | None:
    """A yes/no answer; None (cleared by a correction of what it confirmed) asks it again."""
    return None if value is None else bool(value)


#: at most this many words besides the order number, and the message is a correction, not a request
_CORRECTION_WORDS = 6


def is_plain_correction(text: str) -> bool:
    """"no wait, I meant 190003" corrects an answer; "actually can I change the address of 190003
    instead" asks for another task, although it says "instead"."""
    if not CORRECTION_RE.search(text):
        return False
    words = re.findall(r"[^\W\d_]+", re.sub(r"#?\d{6}", " ", text))
    return len(words) <= _CORRECTION_WORDS


def latest_intent(tracker: Tracker) -> str:
    """The intent of the customer's latest message ("" when there is none)."""
    return str(((tracker.latest_message or {}).get("intent") or {}).get("name") or "")


def misses_of(tracker: Tracker, slot: str) -> int:
    """Answers in a row that did not fit `slot` (the ``repair_misses`` slot holds "<slot>:<count>")."""
    raw = str(tracker.get_slot("repair_misses") or "")
    name, _, count = raw.rpartition(":")
    return int(count) if name == slot and count.isdigit() else 0


def chat_verified(customer_id: int) -> list[EventType]:
    return [
        SlotSet("verified_customer_id", str(customer_id)),
        SlotSet("verified_by", "chat"),
        SlotSet("verification_attempts", 0),
    ]


# ---------------------------------------------------------------- formatting


class SafeAction(Action, metaclass=ABCMeta):
    """Base for actions: any unexpected error becomes a polite reply, never silence."""

    @abstractmethod
    def name(self) -> str: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        with action_run():  # the identity service is asked once in this run
            try:
                return await self.act(dispatcher, tracker, domain)
            except ServiceError as exc:
                reply_error(dispatcher, exc, number=tracker.get_slot("order_number") or "")
                return []
            except Exception:  # noqa: BLE001 - log it, apologise, keep the conversation going
                logger.exception("Action %s failed", self.name())
                dispatcher.utter_message(response="utter_technical_problem")
                # a person takes over when configured (handoff.yml)
                return await hand_over_failure(dispatcher, tracker, self.name())

    @abstractmethod
    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        """The action's work; ServiceError messages are shown to the customer as they are."""


# ---------------------------------------------------------------- forms about one order
_stop_form: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("stop_form", default=None)
#: (order number, email) -> the slots its check gave, in this validation run: an order number and an
#: email in one message are both validated, and the pair must be checked (and counted) once
_checked: contextvars.ContextVar[dict | None] = contextvars.ContextVar("checked", default=None)


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
    #: intents that start this form: they never switch away from it
    own_intents: tuple[str, ...] = ()
    #: what the customer calls this task ("your return for #190012")
    task_label = "request"
    #: free-text questions whose answers may sound like another request ("it never arrived")
    no_switch_slots: tuple[str, ...] = ()

    @abstractmethod
    def name(self) -> str: ...

    def check_order(self, session: Any, customer_id: int, order_number: str) -> Any:
        """Raises NotFound/NotAllowed when this form cannot act on the order. Override."""
        return get_order(session, customer_id, order_number)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if self.switches_task(tracker):
            # another request mid-form: reject, so the rules in digressions.yml leave this form for it
            return [ActionExecutionRejected(self.form_name())]
        flags: list[bool] = []
        token = _stop_form.set(flags)
        checked_token = _checked.set({})
        requested = tracker.get_slot("requested_slot")
        try:
            with action_run():  # the identity service is asked once in this run (again after a verification)
                ident = resolve_identity(tracker)
                events = ident.events + await super().run(dispatcher, tracker, domain)
                if not flags:
                    events += self._count_misses(requested, events, dispatcher, tracker)
        except Exception:  # noqa: BLE001
            logger.exception("Form validation %s failed", self.name())
            dispatcher.utter_message(response="utter_technical_problem")
            flags.append(True)
            events = []
        finally:
            _stop_form.reset(token)
            _checked.reset(checked_token)
        if flags:
            events.append(SlotSet("requested_slot", None))
        return events

    def form_name(self) -> str:
        return self.name().removeprefix("validate_")

    def switches_task(self, tracker: Tracker) -> bool:
        """Whether the latest message asks for another task while this form was asking a question.

        Only mid-form (a question was asked): at activation the latest intent is the one that
        started the form. A new order number given as a correction never switches.
        """
        requested = tracker.get_slot("requested_slot")
        if not requested or tracker.active_loop_name != self.form_name():
            return False
        intent = latest_intent(tracker)
        if intent not in TASK_SWITCH_INTENTS or intent in self.own_intents:
            return False
        if requested in self.no_switch_slots and intent not in NEVER_AN_ANSWER:
            return False
        return not is_plain_correction(latest_text(tracker))

    def _count_misses(
        self, requested: Any, events: list[EventType], dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        """Counts answers in a row that did not fit the question; offers a way out, then stops asking.

        The email has its own limit (MAX_VERIFICATION_ATTEMPTS); yes/no questions cannot be missed.
        """
        if not requested or requested == "email" or str(requested).endswith("_confirm"):
            return []
        previous = previous_slot_value(tracker, "order_number")
        if any(e.get("name") == "order_number" and e.get("value") not in (None, previous) for e in events):
            return []  # the order number was corrected: its questions start afresh
        results = [e.get("value") for e in events if e.get("event") == "slot" and e.get("name") == requested]
        if not results:
            return []  # the question was not answered (another slot was given)
        if results[-1] is not None:
            return [SlotSet("repair_misses", None)] if tracker.get_slot("repair_misses") else []
        misses = misses_of(tracker, str(requested)) + 1
        if misses >= MAX_MISSES:
            dispatcher.utter_message(response="utter_repair_give_up", task=task_label(self.task_label, tracker))
            stop_form()
            return [SlotSet("repair_misses", None)]
        if misses >= MISSES_BEFORE_WAY_OUT:
            dispatcher.utter_message(response="utter_repair_way_out", task=task_label(self.task_label, tracker))
        return [SlotSet("repair_misses", f"{requested}:{misses}")]

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
        values = value if isinstance(value, list) else [value]  # "190003, not 190001": two entities
        numbers = [normalize_order_number(v if isinstance(v, str) else str(v or "")) for v in values]
        number = next((n for n in numbers if n and n != previous), None) or next((n for n in numbers if n), None)
        resets: dict[str, Any] = {}
        if requested and requested != "order_number" and previous:
            if number == previous or not self.is_correction(tracker, str(requested)):
                # a 6-digit number inside another answer (a postcode, say) must not switch orders mid-task
                return {"order_number": previous}
            # a correction: the new number replaces the old one; what depended on it is asked again
            dispatcher.utter_message(response="utter_order_corrected", number=number, previous=previous)
            resets = {slot: None for slot in self.order_dependent_slots(domain)}
        if not number:
            dispatcher.utter_message(response="utter_order_number_malformed")
            return {"order_number": None}
        ident = resolve_identity(tracker)
        if ident.customer_id is not None:
            return {**resets, **await self._check(number, ident.customer_id, dispatcher)}
        if resets:  # not verified yet: the email proves ownership of the new number
            return {**resets, "order_number": number, "email": None}
        email = tracker.get_slot("email")
        if email and not email_typed_in_this_session(tracker, email):  # remembered from another client
            return {"order_number": number, "email": None}
        if email:  # the email came first (or in the same message): verify now
            return await self._verify(number, str(email), tracker, dispatcher)
        return {"order_number": number}  # ownership is proven with the email next

    @staticmethod
    def is_correction(tracker: Tracker, requested: str) -> bool:
        """Whether a new order number mid-form corrects the earlier one.

        Where an email or a yes/no is asked, a lone order number can only be a correction; inside a
        free-text answer (an address with a 6-digit postcode) only words like "I meant" make it one.
        """
        if requested == "email" or requested.endswith("_confirm"):
            return True
        return bool(CORRECTION_RE.search(latest_text(tracker)))

    def order_dependent_slots(self, domain: DomainDict) -> list[str]:
        """The form's answers that belong to one order (item, new address, confirmation)."""
        form = (domain.get("forms") or {}).get(self.form_name()) or {}
        required = form.get("required_slots") or []
        return [s for s in required if s not in ("order_number", "email")]

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
        checked = _checked.get()
        if checked is not None and (number, email) in checked:
            return dict(checked[(number, email)])
        result = await self._verify_once(number, email, tracker, dispatcher)
        if checked is not None:
            checked[(number, email)] = dict(result)
        return result

    async def _verify_once(
        self, number: str, email: str, tracker: Tracker, dispatcher: CollectingDispatcher
    ) -> dict[str, Any]:
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
            wait = verification_service.wait_message(check.wait_s)
            dispatcher.utter_message(response="utter_verify_wait", message=wait)
            stop_form()
            return {"order_number": None, "email": None, "verification_attempts": attempts + int(check.checked)}
        if customer_id is None:
            attempts += 1
            if attempts >= MAX_VERIFICATION_ATTEMPTS:
                dispatcher.utter_message(response="utter_verify_locked")
                stop_form()
            else:
                dispatcher.utter_message(response="utter_verify_failed")
            # the number stays: the email is asked again (or the number corrected, "I meant 190003")
            return {"order_number": number if attempts < MAX_VERIFICATION_ATTEMPTS else None, "email": None,
                    "verification_attempts": attempts}
        forget_identity(tracker)  # verified now: a later question in this run asks the service again
        result = await self._check(number, customer_id, dispatcher)
        slots: dict[str, Any] = {"email": email, **result}
        slots.update({e["name"]: e["value"] for e in chat_verified(customer_id)})
        return slots

    async def _check(self, number: str, customer_id: int, dispatcher: CollectingDispatcher) -> dict[str, Any]:
        try:
            await in_transaction(self.check_order, customer_id, number)
        except NotFound:
            dispatcher.utter_message(response="utter_order_not_found", number=number)
            return {"order_number": None}
        except NotAllowed as exc:
            reply_error(dispatcher, exc, number=number)
            stop_form()
            return {"order_number": number}
        return {"order_number": number}
