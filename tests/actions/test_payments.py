"""actions/payments.py: showing invoices of the verified customer's orders."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from actions.payments import ActionShowInvoice, ValidateInvoiceForm
from bot.db import models as m
from bot.db.session import session_scope
from bot.services import invoices as invoice_service
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    CARLA,
    EMAILS,
    assert_polite,
    make_tracker,
    one_text,
    render,
    slot_values,
    token_for,
)


async def test_invoice_form_with_token_needs_no_number(db_url, domain, dispatcher):
    tracker = make_tracker(domain, form="invoice_form", requested_slot=None, token=token_for(ALICE))
    events = await ValidateInvoiceForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["requested_slot"] is None


async def test_invoice_form_chat_verification(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain,
        form="invoice_form",
        requested_slot="email",
        candidates={"email": EMAILS[CARLA]},
        slots={"order_number": "190009"},
    )
    events = await ValidateInvoiceForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(CARLA)
    assert slots["order_number"] == "190009"


async def test_show_invoice_for_one_order(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, text="invoice please", intent="get_invoice", token=token_for(CARLA), slots={"order_number": "190009"}
    )
    events = await ActionShowInvoice().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    assert text.startswith("Invoice INV-190009 for order #190009, issued ")
    assert ": $142.97 (1x Copperfield X1 Chef's Knife $63.99; 1x Culina X1 Cutting Board $41.99; " in text
    assert text.endswith("You can download the PDF from your account under Orders > Invoices.")
    assert slot_values(events)["verified_customer_id"] == str(CARLA)


async def test_show_invoice_in_chinese(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(CARLA), slots={"order_number": "190009", "language": "zh"})
    await ActionShowInvoice().run(dispatcher, tracker, domain)
    (message,) = dispatcher.messages
    text = render(message, "zh")
    assert text.startswith("发票INV-190009（订单#190009），开具日期")
    assert "Copperfield X1 Chef's Knife ×1 63.99美元；" in text and "$" not in text  # dollars the Chinese way
    assert text.endswith("里下载。")


async def test_show_invoice_not_issued_yet(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(BOB), slots={"order_number": "190005"})
    assert await ActionShowInvoice().run(dispatcher, tracker, domain) == []
    assert one_text(dispatcher) == (
        "There's no invoice for order #190005 yet: invoices are issued once payment is complete."
    )


async def test_show_invoice_of_someone_elses_order(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190009"})
    await ActionShowInvoice().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    assert text == "I couldn't find an order with that number in your account."


async def test_show_recent_invoices(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE))
    await ActionShowInvoice().run(dispatcher, tracker, domain)
    with session_scope() as s:
        expected = [i.number for i in invoice_service.recent_invoices(s, ALICE, 3)]
    lines = one_text(dispatcher).splitlines()
    assert len(expected) == 3
    assert [line.split()[1] for line in lines[:3]] == expected


async def test_show_invoices_when_there_are_none(fresh_db_url, domain, dispatcher):
    with session_scope() as s:
        bob_orders = select(m.Order.id).where(m.Order.customer_id == BOB)
        s.execute(delete(m.Invoice).where(m.Invoice.order_id.in_(bob_orders)))
    await ActionShowInvoice().run(dispatcher, make_tracker(domain, token=token_for(BOB)), domain)
    assert one_text(dispatcher) == "I couldn't find any invoices on your account yet."


async def test_show_invoice_unverified_is_silent(db_url, domain, dispatcher):
    tracker = make_tracker(domain, slots={"order_number": "190009"})
    assert await ActionShowInvoice().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages == []


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_show_invoice_bad_order_slot_is_polite(db_url, domain, dispatcher, value):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": value or "x"})
    await ActionShowInvoice().run(dispatcher, tracker, domain)
    assert_polite(one_text(dispatcher))
