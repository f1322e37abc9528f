"""actions/orders.py: tracking and cancelling orders (DB checked after every write)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from markdown_it import MarkdownIt
from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions.orders import (
    ActionAskCancelConfirm,
    ActionCancelOrder,
    ActionTrackOrder,
    ValidateCancelOrderForm,
    ValidateTrackOrderForm,
    describe_order,
)
from bot.db import models as m
from bot.db.session import session_scope
from bot.services import orders as order_service
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    CARLA,
    EMAILS,
    assert_polite,
    buttons,
    chat_verify,
    make_tracker,
    one_text,
    slot_values,
    token_for,
)


def order_row(s, number: str) -> m.Order:  # noqa: ANN001
    return s.scalars(select(m.Order).where(m.Order.number == number)).one()


def refunds_of(s, number: str) -> list[m.Refund]:  # noqa: ANN001
    return list(s.scalars(select(m.Refund).join(m.Order).where(m.Order.number == number)))


# ---------------------------------------------------------------- tracking
async def test_track_specific_shipped_order(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, text="where is it", intent="track_order", token=token_for(ALICE), slots={"order_number": "190001"}
    )
    events = await ActionTrackOrder().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    with session_scope() as s:
        order = order_service.get_order(s, ALICE, "190001")
    assert text.startswith("Order #190001 (1x Lumora X1 Mirrorless Camera, 1x Kestrel Plus Memory Card, $1,578.98)")
    assert "is on its way" in text
    assert f"with {order.carrier} (tracking {order.tracking_number})" in text
    assert "expected" in text and "Latest update:" in text
    assert slot_values(events) == {"verified_customer_id": str(ALICE), "verified_by": "token", "csat_due": True}


async def test_track_delivered_order_shows_delivery_date(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190003"})
    await ActionTrackOrder().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    assert "Order #190003" in text and "was delivered on " in text


async def test_track_without_number_lists_recent_orders(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="where are my orders", token=token_for(CARLA))
    await ActionTrackOrder().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    with session_scope() as s:
        recent = order_service.recent_orders(s, CARLA, 3)
    assert text.startswith("Here are your most recent orders:")
    assert [line.split(" ")[2] for line in text.splitlines()[1:4]] == [f"#{o.number}" for o in recent]
    assert len(recent) == 3
    # the widget renders Markdown (CommonMark): the closing line is its own paragraph, not part
    # of the last bullet
    html = MarkdownIt("commonmark").render(text)
    assert html.count("<li>") == 3
    assert html.rstrip().endswith("</ul>\n<p>Ask me about any of them by number.</p>")


async def test_track_unverified_says_nothing_more(db_url, domain, dispatcher):
    """The form already explained why it stopped; the action must not leak anything."""
    tracker = make_tracker(domain, slots={"order_number": "190001"})
    assert await ActionTrackOrder().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages == []


async def test_track_chat_verified_foreign_order_is_not_found(db_url, domain, dispatcher):
    chat_verify(1)
    tracker = make_tracker(domain, slots={"order_number": "190005", "verified_customer_id": "1", "verified_by": "chat"})
    assert await ActionTrackOrder().run(dispatcher, tracker, domain) == []
    text = one_text(dispatcher)
    assert "couldn't find an order" in text and "Bassline" not in text


async def test_track_order_form_validator_name():
    assert ValidateTrackOrderForm().name() == "validate_track_order_form"
    assert ValidateTrackOrderForm().form_name() == "track_order_form"


def test_describe_order_truncates_long_item_lists(db_url, domain):
    from dataclasses import replace

    with session_scope() as s:
        order = order_service.get_order(s, CARLA, "190009")
    many = replace(order, items=order.items * 3)  # 9 lines
    text = describe_order(many, domain)
    assert text.count("1x ") == 4 and "and 5 more" in text
    chinese = describe_order(many, domain, "zh")
    assert chinese.count(" ×1") == 4 and "等另外5件商品" in chinese and chinese.startswith("订单#190009（")


# ---------------------------------------------------------------- cancel form
def cancel_form(domain, candidates, **kw):  # noqa: ANN001, ANN201
    return make_tracker(domain, form="cancel_order_form", requested_slot="order_number", candidates=candidates, **kw)


async def test_cancel_form_accepts_cancellable_order_and_asks_confirmation(db_url, domain, dispatcher):
    tracker = cancel_form(domain, {"order_number": "190002"}, token=token_for(ALICE))
    events = await ValidateCancelOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["order_number"] == "190002"
    assert slots["requested_slot"] == "cancel_confirm"
    assert dispatcher.messages == []


async def test_cancel_form_refuses_shipped_order_and_stops(db_url, domain, dispatcher):
    tracker = cancel_form(domain, {"order_number": "190001"}, token=token_for(ALICE))
    events = await ValidateCancelOrderForm().run(dispatcher, tracker, domain)
    assert events[-1] == SlotSet("requested_slot", None)
    assert one_text(dispatcher) == "Order #190001 has already shipped, so it can no longer be cancelled."


async def test_cancel_form_chat_verification_then_refusal(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain,
        form="cancel_order_form",
        requested_slot="email",
        candidates={"email": EMAILS[ALICE]},
        slots={"order_number": "190003"},
    )
    events = await ValidateCancelOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(ALICE)
    assert slots["requested_slot"] is None
    assert "already been delivered" in one_text(dispatcher)


@pytest.mark.parametrize("value", [True, False])
async def test_cancel_confirm_is_a_bool(db_url, domain, dispatcher, value):
    tracker = make_tracker(
        domain,
        form="cancel_order_form",
        requested_slot="cancel_confirm",
        candidates={"cancel_confirm": value},
        token=token_for(ALICE),
        slots={"order_number": "190002"},
    )
    events = await ValidateCancelOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["cancel_confirm"] is value
    assert slots["requested_slot"] is None  # all filled


async def test_ask_cancel_confirm_describes_order_and_refund(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190002"})
    assert await ActionAskCancelConfirm().run(dispatcher, tracker, domain) == []
    text = one_text(dispatcher)
    assert "Order #190002" in text and "Shall I cancel it?" in text
    assert "The $129.98 you paid will be refunded." in text
    assert [b["payload"] for b in buttons(dispatcher.messages[0])] == ["/affirm", "/deny"]


async def test_ask_cancel_confirm_unpaid_order_mentions_no_refund(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(BOB), slots={"order_number": "190005"})
    await ActionAskCancelConfirm().run(dispatcher, tracker, domain)
    assert "refunded" not in one_text(dispatcher)


# ---------------------------------------------------------------- cancel action + DB
async def test_cancel_paid_order_updates_db_and_creates_refund(fresh_db_url, domain, dispatcher):
    with session_scope() as s:
        before = {i.product_id: i.product.stock for i in order_row(s, "190002").items}
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190002", "cancel_confirm": True})
    events = await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert events == [SlotSet("cancel_confirm", None), SlotSet("csat_due", True)]
    text = one_text(dispatcher)
    with session_scope() as s:
        order = order_row(s, "190002")
        assert order.status == "cancelled"
        assert [p.status for p in order.payments] == ["refunded"]
        assert {i.product_id: i.product.stock for i in order.items} == {k: v + 1 for k, v in before.items()}
        (refund,) = refunds_of(s, "190002")
        assert (refund.kind, refund.status, refund.amount) == ("refund", "approved", Decimal("129.98"))
        assert refund.order_item_id is None
        assert text == (
            f"Done: order #190002 is cancelled. Your refund {refund.number} of $129.98 is on its way "
            "to your original payment method (usually 3-5 business days)."
        )


async def test_cancel_unpaid_order_creates_no_refund(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(BOB), slots={"order_number": "190005", "cancel_confirm": True})
    await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == "Done: order #190005 is cancelled."
    with session_scope() as s:
        order = order_row(s, "190005")
        assert order.status == "cancelled"
        assert [p.status for p in order.payments] == ["failed"]
        assert refunds_of(s, "190005") == []


async def test_cancel_denied_changes_nothing(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190002", "cancel_confirm": False})
    events = await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert events == [SlotSet("cancel_confirm", None)]
    assert "stays as it is" in one_text(dispatcher)
    with session_scope() as s:
        assert order_row(s, "190002").status == "processing"
        assert refunds_of(s, "190002") == []


async def test_cancel_after_stopped_form_does_nothing(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190001"})
    assert await ActionCancelOrder().run(dispatcher, tracker, domain) == [SlotSet("cancel_confirm", None)]
    assert dispatcher.messages == []


async def test_cancel_shipped_order_refused_by_service_and_confirmation_cleared(fresh_db_url, domain, dispatcher):
    """The order shipped between the form and the submit: refused, and the stale "yes" is cleared
    so it can't silently confirm the next cancellation."""
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190001", "cancel_confirm": True})
    events = await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == "Order #190001 has already shipped, so it can no longer be cancelled."
    assert SlotSet("cancel_confirm", None) in events
    with session_scope() as s:
        assert order_row(s, "190001").status == "shipped"
        assert refunds_of(s, "190001") == []


async def test_cancel_someone_elses_order_is_refused(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(ALICE), slots={"order_number": "190005", "cancel_confirm": True})
    events = await ActionCancelOrder().run(dispatcher, tracker, domain)
    assert "couldn't find an order" in one_text(dispatcher)
    assert SlotSet("cancel_confirm", None) in events
    with session_scope() as s:
        assert order_row(s, "190005").status == "pending"


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_cancel_form_bad_input_is_polite(db_url, domain, dispatcher, value):
    tracker = cancel_form(domain, {"order_number": value}, token=token_for(ALICE))
    events = await ValidateCancelOrderForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] is None
    assert_polite(one_text(dispatcher))


async def test_every_order_number_of_the_message_is_tracked(db_url, domain, dispatcher):
    entities = [{"entity": "order_number", "value": n} for n in ("190010", "190009", "190001")]
    tracker = make_tracker(domain, text="where are 190010, 190009 and 190001?", intent="track_order",
                           entities=entities, token=token_for(CARLA), slots={"order_number": "190010"})
    await ActionTrackOrder().run(dispatcher, tracker, domain)
    sent = dispatcher.messages
    assert sent[0]["text"].startswith("Order #190010") and sent[1]["text"].startswith("Order #190009")
    # Alice's order: not shown to Carla, answered as an unknown number
    assert sent[2]["response"] == "utter_order_not_found" and sent[2]["number"] == "190001"
