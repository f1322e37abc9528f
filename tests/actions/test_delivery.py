"""actions/delivery.py: changing the shipping address of an order that hasn't shipped."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions.delivery import (
    ADDRESS_SLOTS,
    ActionAskAddressConfirm,
    ActionAskNewAddress,
    ActionChangeAddress,
    ValidateAddressForm,
    format_parts,
)
from bot.db import models as m
from bot.db.session import session_scope
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    DAVID,
    EMAILS,
    assert_polite,
    buttons,
    make_tracker,
    one_text,
    render,
    slot_values,
    token_for,
)

RESET = [SlotSet(name, None) for name in ADDRESS_SLOTS]


def address_form(domain, requested, candidates, **kw):  # noqa: ANN001, ANN201
    return make_tracker(domain, form="address_form", requested_slot=requested, candidates=candidates, **kw)


def shipping_address(number: str) -> tuple[int, m.Address]:
    with session_scope() as s:
        order = s.scalars(select(m.Order).where(m.Order.number == number)).one()
        return order.shipping_address_id, order.shipping_address


# ---------------------------------------------------------------- form
async def test_changeable_order_is_accepted(db_url, domain, dispatcher):
    tracker = address_form(domain, "order_number", {"order_number": "190002"}, token=token_for(ALICE))
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["order_number"] == "190002"
    assert slots["requested_slot"] == "new_address"
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    ("customer", "number", "expected"),
    [
        (ALICE, "190001", "Order #190001 has already shipped, so it can no longer be changed."),
        (ALICE, "190003", "Order #190003 has already been delivered, so it can't be changed."),
        (BOB, "190007", "Order #190007 is already cancelled."),
    ],
)
async def test_address_change_refused_after_shipping(db_url, domain, dispatcher, customer, number, expected):
    tracker = address_form(domain, "order_number", {"order_number": number}, token=token_for(customer))
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    assert events[-1] == SlotSet("requested_slot", None)
    assert one_text(dispatcher) == expected


async def test_address_form_chat_verification(db_url, domain, dispatcher):
    tracker = address_form(domain, "email", {"email": EMAILS[DAVID]}, slots={"order_number": "190011"})
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["verified_customer_id"] == str(DAVID)
    assert slots["order_number"] == "190011"
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 Rose Street, Springfield, 12345", "12 Rose Street, Springfield, 12345, United States"),
        ("5 Main St, Apt 4, Boston, 02118", "5 Main St, Apt 4, Boston, 02118, United States"),
        ("1 Elm St\nSpringfield IL 62704", "1 Elm St, Springfield IL, 62704, United States"),
        ("10 Downing Street, London, SW1A 2AA, United Kingdom", "10 Downing Street, London, SW1A 2AA, United Kingdom"),
    ],
)
async def test_valid_address_is_normalised(db_url, domain, dispatcher, text, expected):
    tracker = address_form(
        domain, "new_address", {"new_address": text}, token=token_for(ALICE), slots={"order_number": "190002"}
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["new_address"] == expected
    assert slots["requested_slot"] == "address_confirm"
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Springfield", "I need a few more details."),
        ("Rose Street, Springfield, 12345", "The street needs a house number."),
        ("12 Rose Street, Springfield", "I couldn't find a postcode."),
        ("12 Rose Street, 12345", "I couldn't find the city."),
        ("12 Rose St; DROP TABLE addresses, Springfield, 12345", "That doesn't look like an address."),
        ("x" * 301, "That address is too long."),
    ],
)
async def test_invalid_address_is_explained(db_url, domain, dispatcher, text, reason):
    tracker = address_form(
        domain, "new_address", {"new_address": text}, token=token_for(ALICE), slots={"order_number": "190002"}
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["new_address"] is None
    msg = one_text(dispatcher)
    assert msg.startswith(reason)
    assert "12 Rose Street, Springfield, 12345" in msg


async def test_chinese_address_is_kept_the_chinese_way_and_a_bad_one_explained_in_chinese(db_url, domain, dispatcher):
    tracker = address_form(domain, "new_address", {"new_address": "寄到杭州市西湖区文三路478号华星时代广场A座"},
                           token=token_for(ALICE), slots={"order_number": "190002", "language": "zh"})
    slots = slot_values(await ValidateAddressForm().run(dispatcher, tracker, domain))
    assert slots["new_address"] == "杭州市西湖区文三路478号华星时代广场A座"
    tracker = address_form(domain, "new_address", {"new_address": "西湖区文三路"}, token=token_for(ALICE),
                           slots={"order_number": "190002", "language": "zh"})
    assert slot_values(await ValidateAddressForm().run(dispatcher, tracker, domain))["new_address"] is None
    assert "上海市浦东新区世纪大道100号" in render(dispatcher.messages[-1], "zh")


@pytest.mark.parametrize("text", BAD_INPUTS)
async def test_bad_address_input_is_polite(db_url, domain, dispatcher, text):
    tracker = address_form(
        domain, "new_address", {"new_address": text}, token=token_for(ALICE), slots={"order_number": "190002"}
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["new_address"] is None
    assert_polite(one_text(dispatcher))


@pytest.mark.parametrize("value", [True, False])
async def test_address_confirm(db_url, domain, dispatcher, value):
    tracker = address_form(
        domain,
        "address_confirm",
        {"address_confirm": value},
        token=token_for(ALICE),
        slots={"order_number": "190002", "new_address": "1 A St, Springfield, 12345"},
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["address_confirm"] is value
    assert slots["requested_slot"] is None


def test_format_parts_writes_a_chinese_address_big_to_small():
    parts = {"line1": "南山区科技园南路15号", "line2": "2栋801室", "city": "广东省深圳市",
             "postcode": "518057", "country": "中国"}
    assert format_parts(parts) == "广东省深圳市南山区科技园南路15号2栋801室，邮编518057"


def test_format_parts_skips_empty_parts():
    assert format_parts({"line1": "1 A St", "line2": None, "city": "X", "postcode": "12345", "country": ""}) == (
        "1 A St, X, 12345"
    )


# ---------------------------------------------------------------- questions
async def test_ask_new_address(domain, dispatcher):
    assert await ActionAskNewAddress().run(dispatcher, make_tracker(domain), domain) == []
    assert "new shipping address" in one_text(dispatcher)


async def test_ask_address_confirm(domain, dispatcher):
    tracker = make_tracker(domain, slots={"order_number": "190002", "new_address": "1 A St, X, 12345, United States"})
    await ActionAskAddressConfirm().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == "Ship order #190002 to 1 A St, X, 12345, United States instead?"
    assert [b["payload"] for b in buttons(dispatcher.messages[0])] == ["/affirm", "/deny"]


# ---------------------------------------------------------------- action + DB
NEW_ADDRESS = "9 Oak Avenue, Apt 2, Denver, 80203, United States"


def change_tracker(domain, customer, number, confirm=True, address=NEW_ADDRESS):  # noqa: ANN001, ANN201
    return make_tracker(
        domain,
        token=token_for(customer),
        slots={"order_number": number, "new_address": address, "address_confirm": confirm},
    )


async def test_change_address_updates_the_order(fresh_db_url, domain, dispatcher):
    old_id, _ = shipping_address("190011")
    events = await ActionChangeAddress().run(dispatcher, change_tracker(domain, DAVID, "190011"), domain)
    assert events == [*RESET, SlotSet("csat_due", True)]  # resolved: CSAT is due
    new_id, address = shipping_address("190011")
    assert new_id != old_id
    assert (address.customer_id, address.line1, address.line2, address.city, address.postcode, address.country) == (
        DAVID,
        "9 Oak Avenue",
        "Apt 2",
        "Denver",
        "80203",
        "United States",
    )
    assert address.is_default is False
    assert one_text(dispatcher) == (
        "Done: order #190011 will now ship to 9 Oak Avenue, Apt 2, Denver 80203, United States."
    )


async def test_change_address_denied_keeps_the_old_one(fresh_db_url, domain, dispatcher):
    old_id, _ = shipping_address("190011")
    events = await ActionChangeAddress().run(dispatcher, change_tracker(domain, DAVID, "190011", False), domain)
    assert events == RESET
    assert shipping_address("190011")[0] == old_id
    assert one_text(dispatcher) == "Okay, the shipping address stays as it was."


async def test_change_address_refused_when_shipped_meanwhile(fresh_db_url, domain, dispatcher):
    old_id, _ = shipping_address("190001")
    events = await ActionChangeAddress().run(dispatcher, change_tracker(domain, ALICE, "190001"), domain)
    assert one_text(dispatcher) == "Order #190001 has already shipped, so it can no longer be changed."
    assert SlotSet("address_confirm", None) in events  # the stale "yes" can't confirm a later change
    assert shipping_address("190001")[0] == old_id


async def test_change_address_of_someone_elses_order(fresh_db_url, domain, dispatcher):
    old_id, _ = shipping_address("190011")
    await ActionChangeAddress().run(dispatcher, change_tracker(domain, ALICE, "190011"), domain)
    assert "couldn't find an order" in one_text(dispatcher)
    assert shipping_address("190011")[0] == old_id


async def test_change_address_unverified_does_nothing(fresh_db_url, domain, dispatcher):
    old_id, _ = shipping_address("190011")
    tracker = make_tracker(
        domain, slots={"order_number": "190011", "new_address": "9 Oak Ave, Denver, 80203", "address_confirm": True}
    )
    assert await ActionChangeAddress().run(dispatcher, tracker, domain) == RESET
    assert dispatcher.messages == []
    assert shipping_address("190011")[0] == old_id


async def test_postcode_that_looks_like_an_order_number_does_not_switch_orders(db_url, domain, dispatcher):
    """'New Delhi 110001' also matches the order-number pattern: the order in hand must stay."""
    from tests.actions.conftest import slot_event

    tracker = address_form(
        domain,
        "new_address",
        {"order_number": "110001", "new_address": "4 Park Street, New Delhi 110001"},
        token=token_for(DAVID),
        slots={"order_number": "190011"},
        history=[slot_event("order_number", "190011")],
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] == "190011"


# ---------------------------------------------------------------- carry-over and corrections (issue 25)
async def test_the_address_in_the_request_is_not_asked_again(db_url, domain, dispatcher):
    text = "please ship 190002 to 77 Pine Road, Denver, 80203 instead"
    tracker = address_form(domain, None, {"order_number": "190002"}, token=token_for(ALICE), text=text)
    slots = slot_values(await ValidateAddressForm().run(dispatcher, tracker, domain))
    assert slots["new_address"].startswith("77 Pine Road, Denver, 80203")
    assert slots["requested_slot"] == "address_confirm"


async def test_a_new_address_at_the_confirmation_is_confirmed_instead(db_url, domain, dispatcher):
    text = "no sorry, it's 21 Oak Street, Springfield, 62704"
    tracker = address_form(domain, "address_confirm", {"address_confirm": False}, token=token_for(ALICE), text=text,
                           slots={"order_number": "190002", "new_address": "12 Oak Street, Springfield, 62704"})
    slots = slot_values(await ValidateAddressForm().run(dispatcher, tracker, domain))
    assert slots["new_address"].startswith("21 Oak Street")
    assert slots["address_confirm"] is None  # the "no" was about the old address: asked again
    assert slots["requested_slot"] == "address_confirm"
