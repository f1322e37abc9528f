"""actions/refunds.py: the refund/return form, submitting requests (DB rows), and refund status."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions.refunds import (
    REFUND_SLOTS,
    WHOLE_ORDER,
    ActionAskRefundConfirm,
    ActionAskRefundItem,
    ActionAskRefundReason,
    ActionSubmitRefund,
    ActionTrackRefund,
    ValidateRefundForm,
    ValidateTrackRefundForm,
)
from bot.db import models as m
from bot.db.session import session_scope
from bot.services import refunds as refund_service
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    CARLA,
    DAVID,
    EMAILS,
    assert_polite,
    buttons,
    make_tracker,
    one_text,
    slot_values,
    texts,
    token_for,
)

RESET = [SlotSet(name, None) for name in REFUND_SLOTS]


def refund_form(domain, requested, candidates, **kw):  # noqa: ANN001, ANN201
    return make_tracker(domain, form="refund_form", requested_slot=requested, candidates=candidates, **kw)


def refund_rows(number: str) -> list[m.Refund]:
    with session_scope() as s:
        return list(s.scalars(select(m.Refund).join(m.Order).where(m.Order.number == number).order_by(m.Refund.id)))


def single_item_eligible_order() -> tuple[int, str, str]:
    """(customer id, order number, item name) of a seeded one-item order that qualifies for a refund."""
    with session_scope() as s:
        orders = s.scalars(select(m.Order).where(m.Order.status == "delivered").order_by(m.Order.id)).all()
        for order in orders:
            if (
                len(order.items) == 1
                and refund_service.check_refund_eligibility(s, order.customer_id, order.number).eligible
            ):
                return order.customer_id, order.number, order.items[0].product.name
    raise AssertionError("the small seed has no eligible one-item order")


# ---------------------------------------------------------------- form: the order
async def test_eligible_order_is_accepted_and_item_asked_next(db_url, domain, dispatcher):
    tracker = refund_form(domain, "order_number", {"order_number": "190003"}, token=token_for(ALICE))
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["order_number"] == "190003"
    assert "refund_item" not in slots  # two items: the customer chooses
    assert slots["requested_slot"] == "refund_item"
    assert dispatcher.messages == []


async def test_one_item_order_fills_the_item(db_url, domain, dispatcher):
    customer_id, number, name = single_item_eligible_order()
    tracker = refund_form(domain, "order_number", {"order_number": number}, token=token_for(customer_id))
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["refund_item"] == name
    assert slots["requested_slot"] == "refund_reason"


async def test_refund_refused_after_30_days(db_url, domain, dispatcher):
    tracker = refund_form(domain, "order_number", {"order_number": "190004"}, token=token_for(ALICE))
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert events[-1] == SlotSet("requested_slot", None)
    text = one_text(dispatcher)
    assert text.startswith("Order #190004 was delivered on ")
    assert "more than 30 days ago" in text and "30-day refund window" in text


@pytest.mark.parametrize(
    ("customer", "number", "expected"),
    [
        (ALICE, "190001", "Order #190001 is still on its way."),
        (ALICE, "190002", "Order #190002 hasn't shipped yet, so you can simply cancel it instead."),
        (BOB, "190007", "Order #190007 was cancelled; any payment was refunded automatically."),
        (CARLA, "190008", "Order #190008 has already been returned."),
        (DAVID, "190013", "Order #190013 was delivered on "),
    ],
)
async def test_ineligible_orders_stop_the_form_with_the_reason(db_url, domain, dispatcher, customer, number, expected):
    tracker = refund_form(domain, "order_number", {"order_number": number}, token=token_for(customer))
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["requested_slot"] is None
    assert one_text(dispatcher).startswith(expected)


async def test_refund_form_chat_verification(db_url, domain, dispatcher):
    tracker = refund_form(domain, "email", {"email": EMAILS[DAVID]}, slots={"order_number": "190012"})
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(DAVID) and slots["verified_by"] == "chat"
    assert slots["order_number"] == "190012"
    assert dispatcher.messages == []


async def test_refund_form_someone_elses_order(db_url, domain, dispatcher):
    tracker = refund_form(domain, "order_number", {"order_number": "190012"}, token=token_for(ALICE))
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] is None
    assert "Smartphone" not in one_text(dispatcher)
    assert "couldn't find order #190012" in one_text(dispatcher)


# ---------------------------------------------------------------- form: the item
def item_form(domain, customer, number, value):  # noqa: ANN001, ANN201
    return refund_form(
        domain, "refund_item", {"refund_item": value}, token=token_for(customer), slots={"order_number": number}
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lens", "Kestrel Plus Camera Lens"),
        ("TRIPOD", "Lumora One Tripod"),
        ("tripod please", "Lumora One Tripod"),  # matched by words: the confirmation shows the product
        ("lumora one tripod!", "Lumora One Tripod"),
        ("Kestrel Plus Camera Lens", "Kestrel Plus Camera Lens"),
        ("all of them", WHOLE_ORDER),
        ("the whole order", WHOLE_ORDER),
        ("everything please", WHOLE_ORDER),
    ],
)
async def test_refund_item_matching(db_url, domain, dispatcher, value, expected):
    events = await ValidateRefundForm().run(dispatcher, item_form(domain, ALICE, "190003", value), domain)
    slots = slot_values(events)
    assert slots["refund_item"] == expected
    assert slots["requested_slot"] == "refund_reason"
    assert dispatcher.messages == []


async def test_refund_item_not_in_order(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_form(domain, ALICE, "190003", "laptop"), domain)
    assert slot_values(events)["refund_item"] is None
    assert one_text(dispatcher) == "I couldn't find that item in order #190003."


async def test_refund_item_already_refunded(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_form(domain, BOB, "190006", "sleeve"), domain)
    assert slot_values(events)["refund_item"] is None
    assert one_text(dispatcher) == "A refund for the Novatek Mini Laptop Sleeve has already been requested."


async def test_refund_item_other_item_of_partly_refunded_order(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_form(domain, BOB, "190006", "laptop"), domain)
    assert slot_values(events)["refund_item"] == "Arcadia Pro Laptop"


async def test_refund_item_unverified_is_not_accepted(db_url, domain, dispatcher):
    tracker = refund_form(domain, "refund_item", {"refund_item": "lens"}, slots={"order_number": "190003"})
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["refund_item"] is None


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_refund_item_bad_input_is_polite(db_url, domain, dispatcher, value):
    events = await ValidateRefundForm().run(dispatcher, item_form(domain, CARLA, "190009", value), domain)
    slots = slot_values(events)
    names = {"Copperfield X1 Chef's Knife", "Culina X1 Cutting Board", "Salt, Fire & Time Cookbook by Ravi Sandhu"}
    assert slots["refund_item"] is None or slots["refund_item"] in names  # never the raw input
    for text in texts(dispatcher):
        assert_polite(text)


# ---------------------------------------------------------------- form: reason, confirm
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  arrived   damaged\n ", "arrived damaged"),
        ("wrong size", "wrong size"),
        ("x" * 5000, "x" * 500),
    ],
)
async def test_refund_reason_is_normalised(db_url, domain, dispatcher, value, expected):
    tracker = refund_form(
        domain,
        "refund_reason",
        {"refund_reason": value},
        token=token_for(ALICE),
        slots={"order_number": "190003", "refund_item": WHOLE_ORDER},
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["refund_reason"] == expected
    assert slots["requested_slot"] == "refund_confirm"


@pytest.mark.parametrize("value", ["", " ", "x"])  # None is a reason a correction cleared: asked silently
async def test_refund_reason_too_short_is_asked_again(db_url, domain, dispatcher, value):
    tracker = refund_form(
        domain,
        "refund_reason",
        {"refund_reason": value},
        token=token_for(ALICE),
        slots={"order_number": "190003", "refund_item": WHOLE_ORDER},
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["refund_reason"] is None
    assert "why" in one_text(dispatcher)


async def test_refund_confirm_completes_the_form(db_url, domain, dispatcher):
    tracker = refund_form(
        domain,
        "refund_confirm",
        {"refund_confirm": True},
        token=token_for(ALICE),
        slots={"order_number": "190003", "refund_item": WHOLE_ORDER, "refund_reason": "broken"},
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["refund_confirm"] is True
    assert slots["requested_slot"] is None


# ---------------------------------------------------------------- questions
async def test_ask_refund_item_offers_items_and_whole_order(db_url, domain, dispatcher):
    tracker = make_tracker(domain, token=token_for(CARLA), slots={"order_number": "190009", "refund_kind": "return"})
    assert await ActionAskRefundItem().run(dispatcher, tracker, domain) == []
    msg = dispatcher.messages[0]
    assert one_text(dispatcher) == "Which item from order #190009 is the return for?"
    assert [b["title"] for b in buttons(msg)] == [
        "Copperfield X1 Chef's Knife",
        "Culina X1 Cutting Board",
        "Salt, Fire & Time Cookbook by Ravi Sandhu",
        "The whole order",
    ]
    assert msg["buttons"][-1]["payload"] == WHOLE_ORDER


async def test_ask_refund_reason_names_the_kind(domain, dispatcher):
    await ActionAskRefundReason().run(dispatcher, make_tracker(domain, slots={"refund_kind": "return"}), domain)
    assert one_text(dispatcher).startswith("What's the reason for the return?")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (WHOLE_ORDER, 'To confirm: a refund for order #190003, reason: "broken". Shall I submit it?'),
        (
            "Lumora One Tripod",
            'To confirm: a refund for Lumora One Tripod from order #190003, reason: "broken". Shall I submit it?',
        ),
    ],
)
async def test_ask_refund_confirm(domain, dispatcher, item, expected):
    tracker = make_tracker(domain, slots={"order_number": "190003", "refund_item": item, "refund_reason": "broken"})
    await ActionAskRefundConfirm().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == expected
    assert [b["payload"] for b in buttons(dispatcher.messages[0])] == ["/affirm", "/deny"]


# ---------------------------------------------------------------- submit + DB
def submit_tracker(  # noqa: ANN201
    domain,  # noqa: ANN001
    customer: int,
    number: str,
    item: str = WHOLE_ORDER,
    kind: str = "refund",
    confirm: bool | None = True,
    reason: str = "arrived damaged",
):
    return make_tracker(
        domain,
        token=token_for(customer),
        slots={
            "order_number": number,
            "refund_item": item,
            "refund_reason": reason,
            "refund_confirm": confirm,
            "refund_kind": kind,
        },
    )


async def test_submit_whole_order_refund_writes_row(fresh_db_url, domain, dispatcher):
    events = await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, ALICE, "190003"), domain)
    assert events == [*RESET, SlotSet("csat_due", True)]
    (row,) = refund_rows("190003")
    assert (row.kind, row.status, row.amount, row.order_item_id, row.reason) == (
        "refund",
        "requested",
        Decimal("977.98"),
        None,
        "arrived damaged",
    )
    assert row.number.startswith("RF-") and len(row.number) == 9
    assert one_text(dispatcher) == (
        f"Your refund request {row.number} for $977.98 is submitted. "
        "Refunds reach your original payment method within 5-7 business days after approval."
    )


async def test_submit_item_return_writes_row_for_that_item(fresh_db_url, domain, dispatcher):
    tracker = submit_tracker(domain, CARLA, "190009", item="Culina X1 Cutting Board", kind="return")
    await ActionSubmitRefund().run(dispatcher, tracker, domain)
    (row,) = refund_rows("190009")
    with session_scope() as s:
        item = s.get(m.OrderItem, row.order_item_id)
        assert item.product.name == "Culina X1 Cutting Board"
    assert (row.kind, row.amount) == ("return", Decimal("41.99"))
    assert "prepaid return label" in one_text(dispatcher)


async def test_submit_whole_order_after_item_refund_refunds_the_rest(fresh_db_url, domain, dispatcher):
    await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, BOB, "190006"), domain)
    rows = refund_rows("190006")
    assert [r.number for r in rows][0] == "RF-590001"
    assert rows[-1].amount == Decimal("827.99")  # 858.98 minus the sleeve already requested


async def test_submit_denied_writes_nothing(fresh_db_url, domain, dispatcher):
    events = await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, ALICE, "190003", confirm=False), domain)
    assert events == RESET
    assert refund_rows("190003") == []
    assert "haven't submitted anything" in one_text(dispatcher)


async def test_submit_after_stopped_form_writes_nothing(fresh_db_url, domain, dispatcher):
    events = await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, ALICE, "190004", confirm=None), domain)
    assert events == RESET
    assert dispatcher.messages == []
    assert refund_rows("190004") == []


async def test_submit_refused_after_30_days_writes_nothing_and_clears_confirmation(fresh_db_url, domain, dispatcher):
    events = await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, ALICE, "190004"), domain)
    assert "30-day refund window" in one_text(dispatcher)
    assert refund_rows("190004") == []
    assert SlotSet("refund_confirm", None) in events


async def test_submit_twice_is_refused_the_second_time(fresh_db_url, domain, dispatcher):
    await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, ALICE, "190003"), domain)
    await ActionSubmitRefund().run(dispatcher, submit_tracker(domain, ALICE, "190003"), domain)
    assert len(refund_rows("190003")) == 1
    assert texts(dispatcher)[-1] == "A refund for order #190003 has already been requested."


async def test_submit_unverified_writes_nothing(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, slots={"order_number": "190003", "refund_confirm": True, "refund_reason": "x"})
    assert await ActionSubmitRefund().run(dispatcher, tracker, domain) == RESET
    assert refund_rows("190003") == []


# ---------------------------------------------------------------- refund status
async def test_track_refund_by_refund_number(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="what's the status of rf 590001?", intent="track_refund", token=token_for(BOB))
    events = await ActionTrackRefund().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    assert text.startswith("Refund RF-590001 for Novatek Mini Laptop Sleeve ($30.99), requested ")
    assert text.endswith(": requested.")
    assert slot_values(events)["verified_customer_id"] == str(BOB)


async def test_track_refund_in_chinese(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="RF-590001 退款到哪一步了", token=token_for(BOB), slots={"language": "zh"})
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    assert text.startswith("退款RF-590001：Novatek Mini Laptop Sleeve（30.99美元），申请于")
    assert text.endswith("已提交，等待审核。")


async def test_track_someone_elses_refund_is_not_found(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="status of RF-590001", token=token_for(ALICE))
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    text = one_text(dispatcher)
    assert text == "I couldn't find a refund or return with that number in your account."


async def test_track_refund_by_order_number(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="190008", token=token_for(CARLA), slots={"order_number": "190008"})
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    assert one_text(dispatcher).startswith("Return RF-590003 for order #190008 ($407.99)")


async def test_track_refund_order_without_refunds(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="190003", token=token_for(ALICE), slots={"order_number": "190003"})
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    assert one_text(dispatcher).startswith("There's no refund or return on order #190003 yet.")


async def test_track_refund_lists_recent(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="my refunds?", token=token_for(BOB))
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    lines = one_text(dispatcher).splitlines()
    with session_scope() as s:
        recent = refund_service.recent_refunds(s, BOB, 3)
    assert [line.split()[1] for line in lines] == [r.number for r in recent]
    assert {"RF-590001", "RF-590002"} <= {r.number for r in recent}  # the demo refunds are the newest


async def test_track_refund_none_at_all(db_url, domain, dispatcher):
    with session_scope() as s:
        with_refunds = select(m.Order.customer_id).join(m.Refund)
        customer = s.scalars(select(m.Customer.id).where(m.Customer.id.not_in(with_refunds))).first()
    tracker = make_tracker(domain, text="my refunds?", token=token_for(customer))
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == "You don't have any refunds or returns with us."


async def test_track_refund_unverified_is_silent(db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="RF-590001")
    assert await ActionTrackRefund().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages == []


async def test_track_refund_form_uses_shared_validation(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain,
        form="track_refund_form",
        requested_slot="order_number",
        candidates={"order_number": "#190006"},
        token=token_for(BOB),
    )
    events = await ValidateTrackRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] == "190006"
    assert slot_values(events)["requested_slot"] is None


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_track_refund_bad_text_is_polite(db_url, domain, dispatcher, value):
    tracker = make_tracker(domain, text=value, token=token_for(BOB))
    await ActionTrackRefund().run(dispatcher, tracker, domain)
    assert_polite(one_text(dispatcher))


# ---------------------------------------------------------------- carry-over and corrections (issue 25)
def line_names(number: str) -> list[str]:
    with session_scope() as s:
        order = s.scalars(select(m.Order).where(m.Order.number == number)).one()
        return [line.product.name for line in order.items]


async def test_the_item_and_reason_of_the_request_are_not_asked_again(db_url, domain, dispatcher):
    text = "I want to return the cookbook from 190009, it arrived damaged"
    tracker = refund_form(domain, None, {"order_number": "190009"}, token=token_for(CARLA), text=text)
    slots = slot_values(await ValidateRefundForm().run(dispatcher, tracker, domain))
    assert "Cookbook" in slots["refund_item"] and slots["refund_reason"] == "it arrived damaged"
    assert slots["requested_slot"] == "refund_confirm"


async def test_another_item_named_at_the_reason_question_replaces_the_item(db_url, domain, dispatcher):
    knife, board = (n for n in line_names("190009") if "Knife" in n or "Board" in n)
    text = "actually no, the chef's knife, not the board"
    tracker = refund_form(domain, "refund_reason", {"refund_reason": text}, token=token_for(CARLA), text=text,
                          slots={"order_number": "190009", "refund_item": board})
    slots = slot_values(await ValidateRefundForm().run(dispatcher, tracker, domain))
    assert slots["refund_item"] == knife and slots["refund_reason"] is None  # the reason is asked for the knife
    assert slots["requested_slot"] == "refund_reason"
    assert one_text(dispatcher) == f"Got it: the {knife} instead."


async def test_a_new_reason_at_the_confirmation_replaces_the_old(db_url, domain, dispatcher):
    text = "wait the reason should be: screen arrived cracked"
    tracker = refund_form(domain, "refund_confirm", {}, token=token_for(ALICE), text=text,
                          slots={"order_number": "190003", "refund_item": WHOLE_ORDER, "refund_reason": "broken"})
    slots = slot_values(await ValidateRefundForm().run(dispatcher, tracker, domain))
    assert slots["refund_reason"] == "screen arrived cracked" and slots["refund_confirm"] is None
    assert slots["requested_slot"] == "refund_confirm"  # confirmed again, with the new reason


async def test_a_yes_that_mentions_the_reason_confirms_it(db_url, domain, dispatcher):
    tracker = refund_form(domain, "refund_confirm", {"refund_confirm": True}, token=token_for(ALICE),
                          text="yes the reason is right", slots={"order_number": "190003", "refund_item": WHOLE_ORDER,
                                                                 "refund_reason": "broken"})
    slots = slot_values(await ValidateRefundForm().run(dispatcher, tracker, domain))
    assert slots["refund_confirm"] is True and "refund_reason" not in slots


async def test_not_sure_which_item_offers_the_items_not_a_miss_message(db_url, domain, dispatcher):
    tracker = refund_form(domain, "refund_item", {"refund_item": "not sure"}, token=token_for(CARLA),
                          text="not sure", slots={"order_number": "190009"})
    slots = slot_values(await ValidateRefundForm().run(dispatcher, tracker, domain))
    assert slots["refund_item"] is None
    assert "tap the item" in one_text(dispatcher) and "couldn't find" not in one_text(dispatcher)
