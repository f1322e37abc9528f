"""Conversation repair in the actions (issue 25): task switches, corrections, misses, "I don't know",
complaints that name their order. The same behaviour end to end: tests/e2e/test_repair.py."""

from __future__ import annotations

import pytest

from actions.common import MAX_MISSES
from actions.delivery import ValidateAddressForm
from actions.orders import ValidateCancelOrderForm, ValidateTrackOrderForm
from actions.prompts import ActionAskEmail, ActionAskOrderNumber, ActionHelpMissingAnswer, ActionSwitchTask
from actions.refunds import ValidateRefundForm
from actions.support import ActionHandleInform, ActionLogComplaint
from tests.actions.conftest import (
    ALICE,
    CARLA,
    DAVID,
    buttons,
    chat_verify,
    make_tracker,
    one_text,
    slot_event,
    slot_values,
    texts,
    token_for,
)


def payloads(dispatcher, lang: str = "en") -> list[str]:  # noqa: ANN001
    """Every button the customer sees: the responses' own (domain.yml) and the actions'."""
    return [b["payload"] for m in dispatcher.messages for b in buttons(m, lang)]


# ---------------------------------------------------------------- task digression
@pytest.mark.parametrize("intent", ["track_order", "recommend_products", "cancel_order"])
async def test_another_request_mid_form_rejects_the_form(db_url, domain, dispatcher, intent):
    tracker = make_tracker(
        domain, form="refund_form", requested_slot="refund_item", intent=intent,
        text="hold on, where is order 190013?", candidates={"order_number": "190013"},
        slots={"order_number": "190012"}, history=[slot_event("order_number", "190012")], token=token_for(DAVID),
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert events == [{"event": "action_execution_rejected", "name": "refund_form", "policy": None,
                       "confidence": None, "timestamp": None}]
    assert dispatcher.messages == []


async def test_the_forms_own_intent_is_an_answer_not_a_switch(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="refund_form", requested_slot="order_number", intent="return_item",
        text="return 190012", candidates={"order_number": "190012"}, token=token_for(DAVID),
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] == "190012"


async def test_a_reason_that_sounds_like_tracking_does_not_switch(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="refund_form", requested_slot="refund_reason", intent="track_order",
        text="it never arrived", candidates={"refund_reason": "it never arrived"},
        slots={"order_number": "190012", "refund_item": "x"}, token=token_for(DAVID),
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["refund_reason"] == "it never arrived"


async def test_switch_offers_the_first_task_back_and_clears_its_answers(domain, dispatcher):
    history = [
        {"event": "active_loop", "name": "refund_form"},
        slot_event("order_number", "190012"),
        slot_event("refund_kind", "return"),
    ]
    tracker = make_tracker(
        domain, intent="track_order", text="where is 190013", history=history,
        candidates={"order_number": "190013"}, slots={"refund_kind": "return", "refund_reason": "broken"},
    )
    events = await ActionSwitchTask().run(dispatcher, tracker, domain)
    assert "your return for #190012 aside" in one_text(dispatcher)
    assert payloads(dispatcher) == ['/return_item{"order_number": "190012"}']
    assert slot_values(events) == {"refund_reason": None}


# ---------------------------------------------------------------- correction
async def test_new_order_number_while_the_email_is_asked_replaces_the_first(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="track_order_form", requested_slot="email", intent="inform",
        text="sorry wrong number, I meant 190003", candidates={"order_number": "190003"},
        history=[slot_event("order_number", "190001")],
    )
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] == "190003"
    assert "order #190003 instead of #190001" in one_text(dispatcher)


async def test_correction_of_a_verified_customer_rechecks_ownership(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="cancel_order_form", requested_slot="cancel_confirm", intent="inform",
        text="oops i meant 190005", candidates={"order_number": "190005"},
        history=[slot_event("order_number", "190002")], token=token_for(ALICE),
    )
    events = await ValidateCancelOrderForm().run(dispatcher, tracker, domain)
    slots = slot_values(events)
    assert slots["order_number"] is None and slots["cancel_confirm"] is None
    assert "couldn't find order #190005" in " ".join(texts(dispatcher))


async def test_two_numbers_in_one_correction_take_the_new_one(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="track_order_form", requested_slot="email", intent="inform",
        text="190003 not 190001", candidates={"order_number": ["190003", "190001"]},
        history=[slot_event("order_number", "190001")],
    )
    events = await ValidateTrackOrderForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] == "190003"


async def test_a_postcode_in_an_address_still_keeps_the_order(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="address_form", requested_slot="new_address", intent="inform",
        text="12 Rose Street, Springfield, 190003", history=[slot_event("order_number", "190002")],
        candidates={"order_number": "190003", "new_address": "12 Rose Street, Springfield, 190003"},
        token=token_for(ALICE),
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, domain)
    assert slot_values(events)["order_number"] == "190002"


# ---------------------------------------------------------------- answers that don't fit
def item_miss(domain, misses: int, text: str = "the headphones", **extra):  # noqa: ANN001, ANN201
    slots = {"order_number": "190009", **extra}
    if misses:
        slots["repair_misses"] = f"refund_item:{misses}"
    return make_tracker(
        domain, form="refund_form", requested_slot="refund_item", intent="inform", text=text,
        candidates={"refund_item": text}, slots=slots, history=[slot_event("order_number", "190009")],
        token=token_for(CARLA),
    )


async def test_first_miss_is_counted(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_miss(domain, 0), domain)
    assert slot_values(events)["repair_misses"] == "refund_item:1"
    assert "/stop" not in payloads(dispatcher)


async def test_second_miss_offers_to_stop_or_a_person(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_miss(domain, 1, "yes"), domain)
    assert slot_values(events)["repair_misses"] == "refund_item:2"
    assert {"/stop", "/contact_human_agent"} <= set(payloads(dispatcher))


async def test_second_miss_in_chinese_names_the_task_and_the_way_out_in_chinese(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_miss(domain, 1, "对", language="zh"), domain)
    assert slot_values(events)["repair_misses"] == "refund_item:2"
    way_out = next(m for m in dispatcher.messages if m.get("response") == "utter_repair_way_out")
    assert way_out["task"] == "退款退货"
    assert [b["title"] for b in buttons(way_out, "zh")] == ["先不办了", "转人工客服"]
    assert payloads(dispatcher, "zh")[-2:] == ["/stop", "/contact_human_agent"]


async def test_third_miss_stops_asking(db_url, domain, dispatcher):
    events = await ValidateRefundForm().run(dispatcher, item_miss(domain, MAX_MISSES - 1), domain)
    slots = slot_values(events)
    assert slots["requested_slot"] is None and slots["repair_misses"] is None
    assert "rather than ask again" in " ".join(texts(dispatcher))
    assert payloads(dispatcher) == ["/contact_human_agent"]


async def test_a_fitting_answer_resets_the_count(db_url, domain, dispatcher):
    from bot.db.session import session_scope
    from bot.services.orders import get_order

    with session_scope() as s:
        name = get_order(s, CARLA, "190009").items[0].name
    events = await ValidateRefundForm().run(dispatcher, item_miss(domain, 2, name), domain)
    slots = slot_values(events)
    assert slots["refund_item"] == name and slots["repair_misses"] is None


# ---------------------------------------------------------------- "I don't know"
async def test_dont_know_anonymous_says_where_to_find_it_and_offers_a_person(db_url, domain, dispatcher):
    tracker = make_tracker(domain, form="track_order_form", requested_slot="order_number", intent="dont_know")
    await ActionHelpMissingAnswer().run(dispatcher, tracker, domain)
    assert "confirmation email" in one_text(dispatcher)
    assert "/contact_human_agent" in payloads(dispatcher)


async def test_dont_know_signed_in_lists_recent_orders(db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, form="cancel_order_form", requested_slot="order_number", intent="dont_know", token=token_for(ALICE)
    )
    await ActionHelpMissingAnswer().run(dispatcher, tracker, domain)
    assert any('"order_number": "190002"' in p for p in payloads(dispatcher))


async def test_dont_know_the_email_offers_a_person(db_url, domain, dispatcher):
    tracker = make_tracker(domain, form="track_order_form", requested_slot="email", intent="dont_know")
    await ActionHelpMissingAnswer().run(dispatcher, tracker, domain)
    assert "/contact_human_agent" in payloads(dispatcher)


@pytest.mark.parametrize("action", [ActionAskOrderNumber, ActionAskEmail])
async def test_question_is_not_repeated_right_after_the_help(db_url, domain, dispatcher, action):
    tracker = make_tracker(domain, form="track_order_form", requested_slot="order_number", intent="dont_know")
    await action().run(dispatcher, tracker, domain)
    assert dispatcher.messages == []


async def test_order_number_question_offers_a_signed_in_customers_orders(db_url, domain, dispatcher):
    chat_verify(ALICE)
    tracker = make_tracker(domain, form="cancel_order_form", requested_slot="order_number", intent="cancel_order")
    await ActionAskOrderNumber().run(dispatcher, tracker, domain)
    assert "order number" in one_text(dispatcher)
    assert any("190002" in p for p in payloads(dispatcher))


# ---------------------------------------------------------------- carry-over
async def test_complaint_with_an_order_number_uses_it(fresh_db_url, domain, dispatcher):
    text = "order 190012 arrived broken and nobody answers my emails, this is ridiculous"
    entities = [{"entity": "order_number", "value": "190012", "start": 6, "end": 12}]
    tracker = make_tracker(domain, text=text, intent="complaint", entities=entities)
    events = await ActionLogComplaint().run(dispatcher, tracker, domain)
    reply = one_text(dispatcher)
    assert "order #190012" in reply and "tell me the order number" not in reply
    assert '/get_refund{"order_number": "190012"}' in payloads(dispatcher)
    assert slot_values(events)["order_number"] == "190012"


async def test_complaint_without_an_order_number_asks_for_it(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="your service is terrible and the parcel was late", intent="complaint")
    await ActionLogComplaint().run(dispatcher, tracker, domain)
    assert "tell me the order number" in one_text(dispatcher)


# ---------------------------------------------------------------- an answer the form cannot use at all
@pytest.mark.parametrize(("misses", "way_out"), [(0, False), (1, True)])
async def test_unusable_answer_in_a_form_is_explained_and_counted(domain, dispatcher, misses, way_out):
    slots = {"repair_misses": f"order_number:{misses}"} if misses else {}
    tracker = make_tracker(
        domain, form="track_order_form", requested_slot="order_number", intent="inform", text="12345", slots=slots
    )
    events = await ActionHandleInform().run(dispatcher, tracker, domain)
    assert slot_values(events) == {"repair_misses": f"order_number:{misses + 1}"}
    assert "6 digits" in texts(dispatcher)[0] and "What would you like" not in " ".join(texts(dispatcher))
    assert ("/contact_human_agent" in payloads(dispatcher)) is way_out


async def test_third_unusable_answer_leaves_the_form(domain, dispatcher):
    tracker = make_tracker(
        domain, form="track_order_form", requested_slot="order_number", intent="inform", text="1234",
        slots={"repair_misses": f"order_number:{MAX_MISSES - 1}"},
    )
    events = await ActionHandleInform().run(dispatcher, tracker, domain)
    assert {"event": "active_loop", "name": None, "timestamp": None} in events
    assert slot_values(events)["requested_slot"] is None
    assert payloads(dispatcher) == ["/contact_human_agent"]
