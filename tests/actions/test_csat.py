"""actions/csat.py: when CSAT is due, the rating/comment validation, and what is stored."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions.csat import (
    ActionAskCsatComment,
    ActionAskCsatRating,
    ActionSaveCsat,
    ValidateCsatForm,
    csat_offer,
    escalation_events,
)
from actions.orders import ActionCancelOrder
from actions.support import ActionRequestHuman
from bot.db import models as m
from bot.db.session import session_scope
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    assert_polite,
    buttons,
    make_tracker,
    one_text,
    render,
    slot_values,
    token_for,
    user_event,
)


def csat_form(domain, requested, value, intent="inform", history=None, **kw):  # noqa: ANN001, ANN201
    return make_tracker(
        domain,
        text=str(value or ""),
        intent=intent,
        form="csat_form",
        requested_slot=requested,
        candidates={requested: value},
        history=history,
        **kw,
    )


def feedback_rows(conversation: str = "conv-test") -> list[m.Feedback]:
    with session_scope() as s:
        return list(s.scalars(select(m.Feedback).where(m.Feedback.sender_id == conversation)))


# ---------------------------------------------------------------- when CSAT is due
def test_csat_is_due_once_and_never_after_an_escalation(domain):
    assert csat_offer(make_tracker(domain)) == [SlotSet("csat_due", True)]
    assert csat_offer(make_tracker(domain, slots={"csat_asked": True})) == [SlotSet("csat_due", False)]
    assert csat_offer(make_tracker(domain, slots={"escalated": True})) == [SlotSet("csat_due", False)]


def test_no_csat_while_another_request_of_the_message_waits(domain):
    """The channels mark a message while another request of the customer waits its turn: the rating is
    asked after the last answer, not between two (concierge_rasa/multi_request.REQUESTS_WAITING)."""
    assert csat_offer(make_tracker(domain, metadata={"requests_waiting": True})) == [SlotSet("csat_due", False)]
    assert csat_offer(make_tracker(domain, metadata={"requests_waiting": False})) == [SlotSet("csat_due", True)]
    assert escalation_events() == [SlotSet("escalated", True), SlotSet("csat_due", False)]


async def test_a_resolved_request_makes_csat_due(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190002", "cancel_confirm": True})
    events = await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert slot_values(events)["csat_due"] is True


async def test_a_refused_request_does_not(fresh_db_url, domain, dispatcher):
    # 190001 has shipped: the cancellation is refused, nothing was resolved
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190001", "cancel_confirm": True})
    events = await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert "csat_due" not in slot_values(events)


async def test_after_a_handoff_a_resolution_asks_no_csat(fresh_db_url, domain, dispatcher):
    events = await ActionRequestHuman().run(
        dispatcher, make_tracker(domain, text="a person please", intent="contact_human_agent"), domain
    )
    slots = slot_values(events)
    assert slots["escalated"] is True
    tracker = make_tracker(
        domain,
        token=token_for(ALICE),
        slots={"order_number": "190002", "cancel_confirm": True, "escalated": slots["escalated"]},
    )
    assert slot_values(await ActionCancelOrder().run(dispatcher, tracker, domain))["csat_due"] is False


# ---------------------------------------------------------------- the questions
async def test_ask_rating_offers_five_buttons_and_skip(domain, dispatcher):
    events = await ActionAskCsatRating().run(dispatcher, make_tracker(domain), domain)
    assert events == [SlotSet("csat_due", False), SlotSet("csat_asked", True)]
    assert "from 1 (poor) to 5 (excellent)" in one_text(dispatcher)
    for lang in ("en", "zh"):  # the same choices in both languages
        assert [b["payload"] for b in buttons(dispatcher.messages[0], lang)] == ["5", "4", "3", "2", "1", "/deny"]
    assert buttons(dispatcher.messages[0], "zh")[-1]["title"] == "跳过"


async def test_ask_comment(domain, dispatcher):
    assert await ActionAskCsatComment().run(dispatcher, make_tracker(domain), domain) == []
    assert "skip" in one_text(dispatcher)


@pytest.mark.parametrize(
    ("value", "expected"), [("5", "5"), ("4/5", "4"), ("I'd give it a 3", "3"), ("two", "2"), ("★★★★", "4")]
)
async def test_rating_is_parsed(domain, dispatcher, value, expected):
    events = await ValidateCsatForm().run(dispatcher, csat_form(domain, "csat_rating", value), domain)
    assert slot_values(events) == {"csat_rating": expected}
    assert dispatcher.messages == []


@pytest.mark.parametrize(("value", "intent"), [("no thanks", "deny"), ("/deny", "deny"), ("skip", "inform")])
async def test_skipping_the_rating_ends_the_form(domain, dispatcher, value, intent):
    events = await ValidateCsatForm().run(dispatcher, csat_form(domain, "csat_rating", value, intent), domain)
    assert slot_values(events) == {"csat_rating": None, "requested_slot": None}


async def test_no_rating_gets_one_more_chance_then_is_dropped(domain, dispatcher):
    events = await ValidateCsatForm().run(dispatcher, csat_form(domain, "csat_rating", "hmm it was ok"), domain)
    assert slot_values(events) == {"csat_rating": None}
    assert one_text(dispatcher).startswith("Just pick a number from 1 (poor) to 5 (excellent)")
    asked = {"event": "active_loop", "timestamp": 0, "name": "csat_form"}
    second = make_tracker(
        domain,
        text="dunno",
        intent="inform",
        history=[asked, user_event("hmm it was ok", "inform")],
        candidates={"csat_rating": "dunno"},
    )
    events = await ValidateCsatForm().run(dispatcher, second, domain)
    assert slot_values(events) == {"csat_rating": None, "requested_slot": None}


@pytest.mark.parametrize(
    ("value", "intent", "expected"),
    [
        ("  Quick   and\nfriendly ", "inform", "Quick and friendly"),
        ("no", "deny", ""),
        ("/deny", "deny", ""),
        ("x" * 3000, "inform", "x" * 1000),
    ],
)
async def test_comment(domain, dispatcher, value, intent, expected):
    events = await ValidateCsatForm().run(dispatcher, csat_form(domain, "csat_comment", value, intent), domain)
    assert slot_values(events) == {"csat_comment": expected}


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_bad_input_never_raises(domain, dispatcher, value):
    for slot in ("csat_rating", "csat_comment"):
        events = await ValidateCsatForm().run(dispatcher, csat_form(domain, slot, value), domain)
        assert slot in slot_values(events)
    for msg in dispatcher.messages:
        assert_polite(render(msg))


# ---------------------------------------------------------------- storing it
async def test_rating_and_comment_are_stored_with_conversation_and_customer(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(
        domain,
        token=token_for(ALICE),
        sender_id="conv-csat",
        slots={"csat_rating": "4", "csat_comment": "quick and easy"},
    )
    events = await ActionSaveCsat().run(dispatcher, tracker, domain)
    (row,) = feedback_rows("conv-csat")
    assert (row.customer_id, row.rating, row.comment) == (ALICE, 4, "quick and easy")
    assert SlotSet("csat_due", False) in events
    assert "csat_rating" not in slot_values(events)  # the form's slot events already carry it to the CRM
    assert one_text(dispatcher).startswith("Thank you for your feedback!")


async def test_low_rating_is_stored_and_opens_no_ticket(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, sender_id="conv-low", slots={"csat_rating": "1", "csat_comment": ""})
    await ActionSaveCsat().run(dispatcher, tracker, domain)
    (row,) = feedback_rows("conv-low")
    assert (row.customer_id, row.rating, row.comment) == (None, 1, "")
    with session_scope() as s:
        assert s.scalars(select(m.SupportTicket).where(m.SupportTicket.sender_id == "conv-low")).all() == []
    assert "sorry" in one_text(dispatcher)


async def test_skipped_csat_stores_nothing(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, sender_id="conv-skip", slots={"csat_rating": None})
    assert await ActionSaveCsat().run(dispatcher, tracker, domain) == [SlotSet("csat_due", False)]
    assert feedback_rows("conv-skip") == []
    assert one_text(dispatcher) == "No problem. Is there anything else I can help with?"
