"""actions/prompts.py: the questions the forms ask."""

from __future__ import annotations

import pytest

from actions.prompts import PURPOSE, ActionAskEmail, ActionAskOrderNumber
from tests.actions.conftest import make_tracker, one_text


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("cancel_order_form", "What's the order number you'd like to cancel?"),
        ("track_order_form", "What's the order number to look it up?"),
        ("refund_form", "What's the order number for the refund or return?"),
        ("email_change_form", "What's the order number (any of your orders, so I can verify it's you)?"),
    ],
)
async def test_ask_order_number_names_the_purpose(domain, dispatcher, form, expected):
    tracker = make_tracker(domain, form=form, requested_slot="order_number")
    assert await ActionAskOrderNumber().run(dispatcher, tracker, domain) == []
    text = one_text(dispatcher)
    assert text.startswith(expected + " ")
    assert text.endswith("It's the 6-digit number in your confirmation email, for example 104233.")


async def test_every_form_asking_an_order_number_has_a_purpose(domain):
    asking = {name for name, form in domain["forms"].items() if "order_number" in form["required_slots"]}
    assert asking == set(PURPOSE)


async def test_ask_order_number_outside_a_form_reads_well(domain, dispatcher):
    await ActionAskOrderNumber().run(dispatcher, make_tracker(domain), domain)
    text = one_text(dispatcher)
    assert text.startswith("What's the order number? It's the 6-digit number")
    assert "  " not in text and " ?" not in text


async def test_ask_email(domain, dispatcher):
    assert await ActionAskEmail().run(dispatcher, make_tracker(domain), domain) == []
    assert one_text(dispatcher) == "For your security: what's the email address on that order?"
