"""actions/account.py: changing the account email (form) and the newsletter subscription."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet

from actions.account import (
    ActionAskEmailChangeConfirm,
    ActionAskNewEmail,
    ActionChangeEmail,
    ActionNewsletter,
    ValidateEmailChangeForm,
)
from bot.db import models as m
from bot.db.session import session_scope
from bot.services import faq
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    CARLA,
    EMAILS,
    assert_polite,
    buttons,
    make_tracker,
    one_text,
    slot_values,
    texts,
    token_for,
)

RESET = [SlotSet("new_email", None), SlotSet("email_change_confirm", None)]


def customer(cid: int) -> m.Customer:
    with session_scope() as s:
        return s.get(m.Customer, cid)


def email_form(domain, requested, candidates, **kw):  # noqa: ANN001, ANN201
    return make_tracker(domain, form="email_change_form", requested_slot=requested, candidates=candidates, **kw)


# ---------------------------------------------------------------- form
async def test_token_customer_is_asked_for_the_new_email_first(db_url, domain, dispatcher):
    tracker = make_tracker(domain, form="email_change_form", requested_slot=None, token=token_for(ALICE))
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["requested_slot"] == "new_email"


async def test_unverified_customer_proves_identity_with_order_and_current_email(db_url, domain, dispatcher):
    tracker = email_form(domain, "email", {"email": EMAILS[BOB]}, slots={"order_number": "190006"})
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(BOB) and slots["verified_by"] == "chat"
    assert slots["requested_slot"] == "new_email"


async def test_unverified_customer_with_wrong_email_is_refused(db_url, domain, dispatcher):
    tracker = email_form(domain, "email", {"email": EMAILS[ALICE]}, slots={"order_number": "190006"})
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert "verified_customer_id" not in slots
    assert slots["email"] is None and slots["order_number"] == "190006"  # the email is asked again
    assert "couldn't match" in one_text(dispatcher)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Alice.New@Example.org", "alice.new@example.org"),
        ("please use  alice+shop@mail.example.com  from now on", "alice+shop@mail.example.com"),
    ],
)
async def test_new_email_is_extracted_and_normalised(db_url, domain, dispatcher, value, expected):
    tracker = email_form(domain, "new_email", {"new_email": value}, token=token_for(ALICE))
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["new_email"] == expected
    assert slots["requested_slot"] == "email_change_confirm"
    assert dispatcher.messages == []


@pytest.mark.parametrize("value", ["not an email", "alice@", "@example.com", "alice at example dot com", None])
async def test_invalid_new_email_is_asked_again(db_url, domain, dispatcher, value):
    tracker = email_form(domain, "new_email", {"new_email": value}, token=token_for(ALICE))
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["new_email"] is None
    assert one_text(dispatcher) == "That doesn't look like an email address. Could you type it again?"


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_bad_new_email_input_is_polite(db_url, domain, dispatcher, value):
    tracker = email_form(domain, "new_email", {"new_email": value}, token=token_for(ALICE))
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["new_email"] is None
    assert_polite(one_text(dispatcher))


@pytest.mark.parametrize("value", [True, False])
async def test_email_change_confirm(db_url, domain, dispatcher, value):
    tracker = email_form(
        domain,
        "email_change_confirm",
        {"email_change_confirm": value},
        token=token_for(ALICE),
        slots={"new_email": "a@example.org"},
    )
    events = await ValidateEmailChangeForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["email_change_confirm"] is value
    assert slots["requested_slot"] is None


async def test_ask_new_email_and_confirm(domain, dispatcher):
    await ActionAskNewEmail().run(dispatcher, make_tracker(domain), domain)
    await ActionAskEmailChangeConfirm().run(dispatcher, make_tracker(domain, slots={"new_email": "a@b.org"}), domain)
    assert texts(dispatcher) == [
        "What new email address should we use for your account?",
        "Change your account email to a@b.org?",
    ]
    assert [b["payload"] for b in buttons(dispatcher.messages[1])] == ["/affirm", "/deny"]


# ---------------------------------------------------------------- action + DB
def change_tracker(domain, cid, new_email, confirm=True):  # noqa: ANN001, ANN201
    return make_tracker(domain, token=token_for(cid), slots={"new_email": new_email, "email_change_confirm": confirm})


async def test_change_email_updates_the_account(fresh_db_url, domain, dispatcher):
    events = await ActionChangeEmail().run(dispatcher, change_tracker(domain, ALICE, "alice.new@example.org"), domain)
    assert events == [*RESET, SlotSet("email", "alice.new@example.org"), SlotSet("csat_due", True)]
    assert customer(ALICE).email == "alice.new@example.org"
    assert one_text(dispatcher) == (
        "Done, Alice: your account email is now alice.new@example.org. We'll send order updates there from now on."
    )


async def test_change_email_refused_when_in_use(fresh_db_url, domain, dispatcher):
    events = await ActionChangeEmail().run(dispatcher, change_tracker(domain, ALICE, EMAILS[BOB]), domain)
    assert one_text(dispatcher) == "That email address is already used by another account."
    assert customer(ALICE).email == EMAILS[ALICE]
    assert customer(BOB).email == EMAILS[BOB]
    # the "yes" is cleared: a later email change must be confirmed again
    assert events == RESET


async def test_change_email_invalid_at_submit(fresh_db_url, domain, dispatcher):
    events = await ActionChangeEmail().run(dispatcher, change_tracker(domain, ALICE, "not-an-email"), domain)
    assert "doesn't look like a valid email address" in one_text(dispatcher)
    assert customer(ALICE).email == EMAILS[ALICE]
    assert events == RESET


async def test_change_email_denied(fresh_db_url, domain, dispatcher):
    events = await ActionChangeEmail().run(dispatcher, change_tracker(domain, ALICE, "x@example.org", False), domain)
    assert events == RESET
    assert one_text(dispatcher) == "Okay, your email stays as it is."
    assert customer(ALICE).email == EMAILS[ALICE]


async def test_change_email_unverified_does_nothing(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, slots={"new_email": "x@example.org", "email_change_confirm": True})
    assert await ActionChangeEmail().run(dispatcher, tracker, domain) == RESET
    assert dispatcher.messages == []
    assert customer(ALICE).email == EMAILS[ALICE]


async def test_change_email_with_forged_token_does_nothing(fresh_db_url, domain, dispatcher):
    from tests.actions.conftest import forged_token_for

    tracker = make_tracker(
        domain, token=forged_token_for(BOB), slots={"new_email": "x@example.org", "email_change_confirm": True}
    )
    await ActionChangeEmail().run(dispatcher, tracker, domain)
    assert customer(BOB).email == EMAILS[BOB]


# ---------------------------------------------------------------- newsletter
@pytest.mark.parametrize(
    "text",
    ["subscribe me to the newsletter", "I'd like to get your newsletter", "sign me up for the newsletter"],
)
async def test_newsletter_subscribe(fresh_db_url, domain, dispatcher, text):
    assert customer(BOB).newsletter is False
    tracker = make_tracker(domain, text=text, intent="newsletter_subscription", token=token_for(BOB))
    events = await ActionNewsletter().run(dispatcher, tracker, domain)
    assert customer(BOB).newsletter is True
    assert one_text(dispatcher).startswith(f"You're subscribed to our newsletter at {EMAILS[BOB]}.")
    assert slot_values(events)["verified_customer_id"] == str(BOB)


@pytest.mark.parametrize(
    "text",
    [
        "unsubscribe me",
        "please un-subscribe me from the newsletter",
        "I want to opt out of the newsletter",
        "stop sending me newsletters",
        "I don't want your newsletter anymore",
        "remove me from the mailing list",
        "I no longer want the newsletter",
    ],
)
async def test_newsletter_unsubscribe(fresh_db_url, domain, dispatcher, text):
    assert customer(CARLA).newsletter is True
    tracker = make_tracker(domain, text=text, intent="newsletter_subscription", token=token_for(CARLA))
    await ActionNewsletter().run(dispatcher, tracker, domain)
    assert customer(CARLA).newsletter is False
    assert one_text(dispatcher) == (
        "You're unsubscribed from our newsletter. You'll still get emails about your orders."
    )


async def test_newsletter_unverified_gets_the_faq_answer(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="unsubscribe me", intent="newsletter_subscription")
    await ActionNewsletter().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == faq.answer("newsletter")
    assert customer(CARLA).newsletter is True and customer(BOB).newsletter is False


@pytest.mark.parametrize("text", BAD_INPUTS)
async def test_newsletter_bad_input_is_polite(fresh_db_url, domain, dispatcher, text):
    tracker = make_tracker(domain, text=text, token=token_for(ALICE))
    await ActionNewsletter().run(dispatcher, tracker, domain)
    assert_polite(one_text(dispatcher))
    assert customer(ALICE).newsletter is True  # nothing in there asks to unsubscribe


# ---------------------------------------------------------------- carry-over and corrections (issue 25)
async def test_the_new_email_in_the_request_is_used_once_the_customer_is_known(db_url, domain, dispatcher):
    text = "change my email to alice.new@example.com"
    tracker = email_form(domain, None, {}, token=token_for(ALICE), text=text)
    slots = slot_values(await ValidateEmailChangeForm().run(dispatcher, tracker, domain))
    assert slots["new_email"] == "alice.new@example.com" and slots["requested_slot"] == "email_change_confirm"
    anonymous = email_form(domain, None, {}, text=text)  # before verification an email proves who they are
    assert "new_email" not in slot_values(await ValidateEmailChangeForm().run(dispatcher, anonymous, domain))


async def test_a_retyped_email_at_the_confirmation_is_confirmed_instead(db_url, domain, dispatcher):
    text = "oops typo, alice.new@example.com"
    tracker = email_form(domain, "email_change_confirm", {}, token=token_for(ALICE), text=text,
                         slots={"new_email": "alice.new@exmaple.com"})
    slots = slot_values(await ValidateEmailChangeForm().run(dispatcher, tracker, domain))
    assert slots["new_email"] == "alice.new@example.com" and slots["email_change_confirm"] is None
