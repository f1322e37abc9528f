"""actions/upset.py: the offer of a human to an upset customer (predicted by concierge_rasa.upset_policy)."""

from __future__ import annotations

import pytest
from rasa_sdk.events import ActionReverted, SlotSet
from sqlalchemy import select

from actions.upset import ActionOfferHuman
from bot.db import models as m
from bot.db.session import session_scope
from tests.actions.conftest import ALICE, BAD_INPUTS, make_tracker, one_text, render, token_for, user_event

UPSET_OFFER = render({"response": "utter_upset_offer"})

ESCALATED = [SlotSet("escalated", True), SlotSet("csat_due", False)]


def tickets(conversation: str = "conv-test") -> list[m.SupportTicket]:
    with session_scope() as s:
        return list(s.scalars(select(m.SupportTicket).where(m.SupportTicket.sender_id == conversation)))


async def test_offer_opens_an_upset_ticket_and_reverts_itself(fresh_db_url, domain, dispatcher):
    history = [user_event("my parcel is two weeks late", "track_order")]
    tracker = make_tracker(
        domain, text="worst service ever, I'm furious", intent="complaint", token=token_for(ALICE), history=history
    )
    events = await ActionOfferHuman().run(dispatcher, tracker, domain)
    # reverted first, so the normal answer follows; the escalation slots stay applied after it
    assert events == [ActionReverted(), *ESCALATED]
    assert one_text(dispatcher) == UPSET_OFFER and "human" in UPSET_OFFER
    (ticket,) = tickets()
    assert (ticket.category, ticket.priority, ticket.customer_id) == ("upset", "high", ALICE)
    assert "two weeks late" in ticket.description and "furious" in ticket.description


async def test_second_offer_adds_to_the_open_ticket(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="still nothing, this is awful", history=[user_event("so bad")])
    await ActionOfferHuman().run(dispatcher, tracker, domain)
    await ActionOfferHuman().run(dispatcher, tracker, domain)
    assert len(tickets()) == 1


@pytest.mark.parametrize("text", BAD_INPUTS[:4])
async def test_junk_gets_the_offer_but_no_ticket(fresh_db_url, domain, dispatcher, text):
    events = await ActionOfferHuman().run(dispatcher, make_tracker(domain, text=text), domain)
    assert events == [ActionReverted()]
    assert tickets() == []
    assert one_text(dispatcher) == UPSET_OFFER


async def test_a_failure_still_reverts(fresh_db_url, domain, dispatcher, monkeypatch):
    """Whatever goes wrong, the customer's message is still answered as usual afterwards."""

    async def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("database gone")

    monkeypatch.setattr("actions.upset.open_ticket", broken)
    events = await ActionOfferHuman().run(dispatcher, make_tracker(domain, text="terrible"), domain)
    assert events == [ActionReverted()]
    assert one_text(dispatcher) == UPSET_OFFER  # no apology for an internal note that failed
