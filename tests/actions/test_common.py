"""actions/common.py: identity resolution, safe replies, and the shared order-form validation."""

from __future__ import annotations

import time

import pytest
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions import handoff as actions_handoff
from actions.common import (
    MAX_VERIFICATION_ATTEMPTS,
    SafeAction,
    chat_verified,
    latest_user_metadata,
    resolve_identity,
    sender_id,
)
from actions.orders import ValidateTrackOrderForm
from bot.db import models
from bot.db.session import session_scope
from bot.services import handoff as handoff_service
from bot.services import identity as identity_service
from bot.services.errors import NotAllowed
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    CARLA,
    EMAILS,
    assert_polite,
    chat_verify,
    expired_token_for,
    forged_token_for,
    make_tracker,
    one_text,
    render,
    slot_event,
    slot_values,
    texts,
    token_for,
    user_event,
)

TECHNICAL_PROBLEM = render({"response": "utter_technical_problem"})

FORM = "track_order_form"


# ---------------------------------------------------------------- resolve_identity
def test_valid_token_identifies_the_customer_and_records_it(db_url, domain):
    ident = resolve_identity(make_tracker(domain, token=token_for(ALICE)))
    assert ident.customer_id == ALICE
    assert ident.by == "token"
    assert slot_values(ident.events) == {"verified_customer_id": str(ALICE), "verified_by": "token"}


def test_valid_token_already_recorded_sets_no_slots(db_url, domain):
    tracker = make_tracker(
        domain, token=token_for(BOB), slots={"verified_customer_id": str(BOB), "verified_by": "token"}
    )
    ident = resolve_identity(tracker)
    assert (ident.customer_id, ident.by, ident.events) == (BOB, "token", [])


@pytest.mark.parametrize("make_token", [forged_token_for, expired_token_for])
def test_forged_or_expired_token_identifies_nobody(db_url, domain, make_token):
    ident = resolve_identity(make_tracker(domain, token=make_token(ALICE)))
    assert ident.customer_id is None
    assert ident.events == []


def test_tampered_token_payload_is_rejected(db_url, domain):
    alice = token_for(ALICE)
    bob = token_for(BOB)
    spliced = bob.split(".")[0] + "." + alice.split(".")[1]  # Bob's payload, Alice's signature
    assert resolve_identity(make_tracker(domain, token=spliced)).customer_id is None


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", 12345, {"cid": 1}, "x" * 5000, "😀.😀"])
def test_malformed_tokens_never_raise(db_url, domain, token):
    assert resolve_identity(make_tracker(domain, token=token)).customer_id is None


def test_stale_token_slot_is_cleared_when_the_token_stops_coming(db_url, domain):
    """A conversation id alone never grants access: no valid token now = not verified."""
    tracker = make_tracker(domain, slots={"verified_customer_id": str(ALICE), "verified_by": "token"})
    ident = resolve_identity(tracker)
    assert ident.customer_id is None
    assert slot_values(ident.events) == {"verified_customer_id": None, "verified_by": None}


def test_forged_token_clears_a_token_identity(db_url, domain):
    tracker = make_tracker(
        domain,
        token=forged_token_for(BOB),
        slots={"verified_customer_id": str(ALICE), "verified_by": "token"},
    )
    ident = resolve_identity(tracker)
    assert ident.customer_id is None
    assert slot_values(ident.events)["verified_customer_id"] is None


def test_chat_verification_lasts_for_the_conversation(db_url, domain):
    chat_verify(3)
    ident = resolve_identity(make_tracker(domain, slots={"verified_customer_id": "3", "verified_by": "chat"}))
    assert (ident.customer_id, ident.by, ident.events) == (3, "chat", [])


def test_chat_slots_alone_grant_nothing(db_url, domain):
    """Slots set some other way (``/intent{...}``, a hand-made tracker) are not a verification."""
    ident = resolve_identity(make_tracker(domain, slots={"verified_customer_id": "3", "verified_by": "chat"}))
    assert ident.customer_id is None
    assert slot_values(ident.events) == {"verified_customer_id": None, "verified_by": None}


def test_token_wins_over_chat_verification(db_url, domain):
    tracker = make_tracker(
        domain, token=token_for(BOB), slots={"verified_customer_id": str(ALICE), "verified_by": "chat"}
    )
    ident = resolve_identity(tracker)
    assert ident.customer_id == BOB
    assert slot_values(ident.events) == {"verified_customer_id": str(BOB), "verified_by": "token"}


def test_garbage_chat_slot_is_cleared(db_url, domain):
    ident = resolve_identity(make_tracker(domain, slots={"verified_customer_id": "'; DROP", "verified_by": "chat"}))
    assert ident.customer_id is None
    assert slot_values(ident.events) == {"verified_customer_id": None, "verified_by": None}


def test_latest_user_metadata_comes_from_the_latest_user_event(domain):
    tracker = make_tracker(
        domain,
        metadata={"customer_token": "new"},
        history=[user_event("earlier", "greet", metadata={"customer_token": "old"})],
    )
    assert latest_user_metadata(tracker) == {"customer_token": "new"}


def test_latest_user_metadata_ignores_non_dict_metadata(domain):
    tracker = make_tracker(domain)
    tracker.events[-1]["metadata"] = "not a dict"
    assert latest_user_metadata(tracker) == {}


def test_chat_verified_events():
    assert slot_values(chat_verified(7)) == {
        "verified_customer_id": "7",
        "verified_by": "chat",
        "verification_attempts": 0,
    }


def test_sender_id_is_bounded(domain):
    assert sender_id(make_tracker(domain, sender_id="x" * 300)) == "x" * 128


# ---------------------------------------------------------------- SafeAction
class _Boom(SafeAction):
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def name(self) -> str:
        return "action_boom"

    async def act(self, dispatcher, tracker, domain):  # noqa: ANN001, ANN202
        raise self.exc


async def test_safe_action_shows_service_error_message(domain, dispatcher):
    events = await _Boom(NotAllowed("x", "You can't do that, sorry.")).run(dispatcher, make_tracker(domain), domain)
    assert events == []
    assert one_text(dispatcher) == "You can't do that, sorry."


async def test_safe_action_turns_crashes_into_a_polite_reply(domain, dispatcher, monkeypatch):
    off = handoff_service.HandoffConfig(triggers=handoff_service.Triggers(action_failed=False))
    monkeypatch.setattr(actions_handoff, "config", lambda: off)
    events = await _Boom(RuntimeError("db exploded at /secret/path")).run(dispatcher, make_tracker(domain), domain)
    assert events == []
    assert one_text(dispatcher) == TECHNICAL_PROBLEM
    assert "secret" not in TECHNICAL_PROBLEM


async def test_a_failed_action_hands_over_to_a_person(fresh_db_url, domain, dispatcher):
    """bot/content/handoff.yml's action_failed: a ticket, a handoff, and the bot pauses."""
    events = await _Boom(RuntimeError("db exploded")).run(dispatcher, make_tracker(domain, sender_id="boom-1"), domain)
    assert events == [ConversationPaused()]
    assert texts(dispatcher)[0] == TECHNICAL_PROBLEM
    assert "passed this conversation to our support team" in texts(dispatcher)[-1]
    with session_scope() as s:
        (handoff,) = s.scalars(select(models.Handoff).where(models.Handoff.sender_id == "boom-1")).all()
        assert (handoff.reason, handoff.status) == ("action_failed", "open")


# ---------------------------------------------------------------- order form identity
def form_tracker(domain, requested, candidates, **kw):  # noqa: ANN001, ANN201
    return make_tracker(domain, form=FORM, requested_slot=requested, candidates=candidates, **kw)


async def test_form_with_valid_token_checks_ownership_and_skips_email(db_url, domain, dispatcher):
    tracker = form_tracker(domain, "order_number", {"order_number": "#190002"}, token=token_for(ALICE))
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["order_number"] == "190002"
    assert slots["verified_customer_id"] == str(ALICE) and slots["verified_by"] == "token"
    assert slots["requested_slot"] is None  # email is not asked for: the form is complete
    assert dispatcher.messages == []


async def test_form_with_token_and_no_order_number_completes_immediately(db_url, domain, dispatcher):
    tracker = make_tracker(domain, form=FORM, requested_slot=None, token=token_for(ALICE))
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["requested_slot"] is None


@pytest.mark.parametrize("make_token", [forged_token_for, expired_token_for])
async def test_form_with_bad_token_falls_back_to_email_verification(db_url, domain, dispatcher, make_token):
    tracker = form_tracker(domain, "order_number", {"order_number": "190002"}, token=make_token(ALICE))
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots == {"order_number": "190002"}  # kept, but nobody is verified: email comes next
    assert "verified_customer_id" not in slots
    assert dispatcher.messages == []


async def test_in_chat_verification_with_order_and_email(db_url, domain, dispatcher):
    tracker = form_tracker(domain, "email", {"email": "  Alice.Martin@Example.com "}, slots={"order_number": "190001"})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(ALICE)
    assert slots["verified_by"] == "chat"
    assert slots["verification_attempts"] == 0
    assert slots["order_number"] == "190001"
    assert slots["email"] == "Alice.Martin@Example.com"
    assert dispatcher.messages == []


async def test_email_given_before_the_order_number_verifies_on_the_number(db_url, domain, dispatcher):
    tracker = form_tracker(domain, "order_number", {"order_number": "190005"}, slots={"email": EMAILS[BOB]})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(BOB)
    assert slots["order_number"] == "190005"


async def test_mismatched_email_is_refused_and_counted(db_url, domain, dispatcher):
    tracker = form_tracker(domain, "email", {"email": EMAILS[BOB]}, slots={"order_number": "190001"})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["order_number"] == "190001" and slots["email"] is None  # the email is asked again
    assert slots["verification_attempts"] == 1
    assert "verified_customer_id" not in slots
    assert "couldn't match that order number with that email" in one_text(dispatcher)
    assert "requested_slot" not in slots  # the form goes on: Rasa asks again


async def test_guessed_number_gets_the_same_answer_as_a_wrong_email(db_url, domain):
    """Probing numbers reveals nothing: an unknown order and someone else's order answer alike."""
    from rasa_sdk.executor import CollectingDispatcher

    answers = []
    for number in ("199999", "190005"):  # does not exist / Bob's order, tried with Alice's email
        dispatcher = CollectingDispatcher()
        tracker = form_tracker(domain, "email", {"email": EMAILS[ALICE]}, slots={"order_number": number})
        events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
        assert slot_values(events)["order_number"] == number and slot_values(events)["email"] is None
        answers.append(one_text(dispatcher))
    assert answers[0] == answers[1]


async def test_someone_elses_order_with_a_token_is_not_found(db_url, domain):
    from rasa_sdk.executor import CollectingDispatcher

    answers = []
    for number in ("190005", "199999"):  # Bob's order / nonexistent, asked by Alice
        dispatcher = CollectingDispatcher()
        tracker = form_tracker(domain, "order_number", {"order_number": number}, token=token_for(ALICE))
        events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
        assert slot_values(events)["order_number"] is None
        answers.append(one_text(dispatcher).replace(number, "N"))
    assert answers[0] == answers[1] == "I couldn't find order #N on your account. Could you check the number?"


@pytest.mark.parametrize(("before", "stops"), [(0.0, False), (1.0, False), (2.0, True), (5.0, True)])
async def test_third_failed_attempt_stops_the_form(db_url, domain, dispatcher, before, stops):
    tracker = form_tracker(
        domain,
        "email",
        {"email": "guess@example.com"},
        slots={"order_number": "190001", "verification_attempts": before},
    )
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verification_attempts"] == int(before) + 1
    assert "verified_customer_id" not in slots
    assert MAX_VERIFICATION_ATTEMPTS == 3
    if stops:
        assert events[-1] == SlotSet("requested_slot", None)  # the form stops
        assert "for your security I can't go on" in one_text(dispatcher)
    else:
        assert "requested_slot" not in slots
        assert "Let's try again." in one_text(dispatcher)


async def test_correct_email_after_failures_resets_the_counter(db_url, domain, dispatcher):
    tracker = form_tracker(
        domain, "email", {"email": EMAILS[ALICE]}, slots={"order_number": "190001", "verification_attempts": 2.0}
    )
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verification_attempts"] == 0
    assert slots["verified_customer_id"] == str(ALICE)


@pytest.mark.parametrize("value", ["12345", "1234567", "099999", "abc", "order please", None, 3.5])
async def test_malformed_order_number_is_explained(db_url, domain, dispatcher, value):
    events = await ValidateTrackOrderForm().run(
        dispatcher, form_tracker(domain, "order_number", {"order_number": value}), domain
    )
    # the first miss is counted (issue 25: the third one stops asking)
    assert slot_values(events) == {"order_number": None, "repair_misses": "order_number:1"}
    assert "6 digits" in one_text(dispatcher)


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_bad_order_number_input_never_raises(db_url, domain, dispatcher, value):
    events = await ValidateTrackOrderForm().run(
        dispatcher, form_tracker(domain, "order_number", {"order_number": value}), domain
    )
    assert slot_values(events)["order_number"] is None
    assert_polite(one_text(dispatcher))


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_bad_email_input_never_raises_and_verifies_nobody(db_url, domain, dispatcher, value):
    tracker = form_tracker(domain, "email", {"email": value}, slots={"order_number": "190001"})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert "verified_customer_id" not in slots
    assert slots["verification_attempts"] == 1
    assert_polite(one_text(dispatcher))


async def test_validator_crash_stops_the_form_politely(db_url, domain, dispatcher, monkeypatch):
    def boom(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("database is locked")

    monkeypatch.setattr(identity_service, "verify_order_email", boom)
    tracker = form_tracker(domain, "email", {"email": EMAILS[ALICE]}, slots={"order_number": "190001"})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    assert events == [SlotSet("requested_slot", None)]
    assert texts(dispatcher) == [TECHNICAL_PROBLEM]


async def test_locked_conversation_cannot_keep_guessing_by_restarting_the_form(db_url, domain, dispatcher):
    """After 3 failures even the right email is refused: no unlimited guesses, one per form restart."""
    tracker = form_tracker(
        domain,
        "email",
        {"email": EMAILS[ALICE]},
        slots={"order_number": "190001", "verification_attempts": 3.0},
    )
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert "verified_customer_id" not in slots
    assert slots["order_number"] is None
    assert events[-1] == SlotSet("requested_slot", None)
    assert "for your security I can't go on" in one_text(dispatcher)


async def test_every_domain_action_is_registered_by_the_actions_package(domain):
    import inspect

    from rasa_sdk import Action

    import actions

    names = set()
    for module in (getattr(actions, n) for n in dir(actions) if inspect.ismodule(getattr(actions, n))):
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and issubclass(cls, Action)
                and cls.__module__ == module.__name__
                and not inspect.isabstract(cls)
            ):
                names.add(cls().name())
    assert set(domain["actions"]) == names


async def test_order_number_and_email_in_one_message(db_url, domain, dispatcher):
    tracker = form_tracker(domain, "order_number", {"order_number": "#190010", "email": EMAILS[CARLA]})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(CARLA)
    assert slots["order_number"] == "190010"
    assert slots["email"] == EMAILS[CARLA]
    assert dispatcher.messages == []


async def test_wrong_pair_in_one_message_counts_one_attempt(db_url, domain, dispatcher):
    tracker = form_tracker(domain, "order_number", {"order_number": "190010", "email": EMAILS[ALICE]})
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert "verified_customer_id" not in slots
    assert slots["order_number"] == "190010" and slots["email"] is None  # the email is asked again
    assert slots["verification_attempts"] == 1
    assert "couldn't match" in one_text(dispatcher)


async def test_new_sender_ids_do_not_reset_the_order_lock(db_url, domain):
    """Failures count per order number in the database: the 4th guess from a 4th conversation waits."""
    for i in range(3):
        d = CollectingDispatcher()
        tracker = form_tracker(domain, "email", {"email": f"guess{i}@example.com"},
                               slots={"order_number": "190001"}, sender_id=f"attacker-{i}")
        await ValidateTrackOrderForm().run(d, tracker, domain)
        assert "couldn't match" in one_text(d) or "can't go on" in one_text(d) or "paused" in one_text(d)
    d = CollectingDispatcher()
    tracker = form_tracker(domain, "email", {"email": EMAILS[ALICE]}, slots={"order_number": "190001"},
                           sender_id="attacker-fresh")
    events = await ValidateTrackOrderForm().run(d, tracker, domain)
    assert "verified_customer_id" not in slot_values(events)  # even the right email is not checked now
    text = one_text(d)
    assert "paused" in text and "try again in" in text and "human" in text
    assert_polite(text)


async def test_chat_verification_binds_to_the_session_in_signed_claims(db_url, domain, dispatcher):
    from bot.services.identity import keyring
    from concierge_rasa.security import CLAIMS_KEY, sign_claims

    claims = {CLAIMS_KEY: sign_claims({"client": "ip:x", "session": "sid-1"}, keyring())}
    tracker = form_tracker(domain, "email", {"email": EMAILS[CARLA]}, slots={"order_number": "190008"},
                           metadata=claims, sender_id="conv-claims", text=EMAILS[CARLA])
    slots = slot_values(await ValidateTrackOrderForm().run(dispatcher, tracker, domain))
    assert slots["verified_customer_id"] == str(CARLA)
    same = make_tracker(domain, metadata=claims, sender_id="conv-claims")
    assert resolve_identity(same).customer_id == CARLA
    other = {CLAIMS_KEY: sign_claims({"client": "ip:x", "session": "sid-2"}, keyring())}
    assert resolve_identity(make_tracker(domain, metadata=other, sender_id="conv-claims")).customer_id is None
    assert resolve_identity(make_tracker(domain, sender_id="conv-claims")).customer_id is None
    forged = {CLAIMS_KEY: {**claims[CLAIMS_KEY], "cid": ALICE, "exp": 9e9}}
    assert resolve_identity(make_tracker(domain, metadata=forged, sender_id="x")).customer_id is None


async def test_an_email_remembered_from_another_session_is_asked_again(db_url, domain, dispatcher):
    """The email slot of a verified conversation is no proof for another client on the same sender id."""
    from bot.services.identity import keyring
    from concierge_rasa.security import CLAIMS_KEY, sign_claims

    victim = {CLAIMS_KEY: sign_claims({"session": "victim-sid"}, keyring())}
    attacker = {CLAIMS_KEY: sign_claims({"session": "attacker-sid"}, keyring())}
    history = [user_event(EMAILS[ALICE], "inform", metadata=victim), slot_event("email", EMAILS[ALICE])]
    tracker = form_tracker(domain, "order_number", {"order_number": "190003"}, metadata=attacker,
                           slots={"email": EMAILS[ALICE]}, history=history, sender_id="conv-reuse")
    slots = slot_values(await ValidateTrackOrderForm().run(dispatcher, tracker, domain))
    assert "verified_customer_id" not in slots and slots["email"] is None
    assert slots["order_number"] == "190003" and dispatcher.messages == []


async def test_an_email_typed_before_a_lapse_of_inactivity_is_asked_again(db_url, domain, dispatcher):
    from bot.services.identity import keyring
    from concierge_rasa.security import CLAIMS_KEY, sign_claims

    same = {CLAIMS_KEY: sign_claims({"session": "sid-idle"}, keyring())}
    old = user_event(EMAILS[ALICE], "inform", metadata=same)
    old["timestamp"] = time.time() - 4000  # longer ago than session_idle_s (1800 by default)
    tracker = form_tracker(domain, "order_number", {"order_number": "190003"}, metadata=same,
                           slots={"email": EMAILS[ALICE]}, history=[old, slot_event("email", EMAILS[ALICE])],
                           sender_id="conv-idle")
    slots = slot_values(await ValidateTrackOrderForm().run(dispatcher, tracker, domain))
    assert "verified_customer_id" not in slots and slots["email"] is None


async def test_one_action_run_asks_the_identity_service_once(db_url, domain, dispatcher, monkeypatch):
    """Form validation asks who the customer is in run(), required_slots() and each validate_*: one lookup."""
    calls = []
    real = identity_service.resolve

    def counting(session, request, now=None):  # noqa: ANN001, ANN202
        calls.append(request.sender_id)
        return real(session, request, now)

    monkeypatch.setattr(identity_service, "resolve", counting)
    tracker = form_tracker(domain, "order_number", {"order_number": "190010"},
                           token=token_for(CARLA), sender_id="conv-once")
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["verified_customer_id"] == str(CARLA)
    assert calls == ["conv-once"]
    resolve_identity(tracker)  # outside an action run nothing is remembered
    assert calls == ["conv-once", "conv-once"]


@pytest.mark.parametrize(("text", "plain"), [
    ("no wait i meant 190003", True),
    ("sorry wrong number, I meant 190003", True),
    ("actually can i change the delivery address of 190003 instead", False),  # another task
    ("where is 190003", False),
])
def test_a_correction_is_short(text: str, plain: bool) -> None:
    from actions.common import is_plain_correction

    assert is_plain_correction(text) is plain
