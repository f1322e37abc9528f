"""actions/support.py: human hand-over, complaints, fallback, task control, inform, feedback form."""

from __future__ import annotations

import dataclasses

import pytest
from rasa_sdk.events import ConversationPaused, FollowupAction, SlotSet
from sqlalchemy import select

from actions import handoff
from actions.support import (
    TASK_SLOTS,
    ActionAskFeedbackComment,
    ActionAskFeedbackRating,
    ActionFallback,
    ActionHandleInform,
    ActionLogComplaint,
    ActionRequestHuman,
    ActionSaveFeedback,
    ActionStopTask,
    ValidateFeedbackForm,
    clarification_choices,
)
from bot.db import models as m
from bot.db.session import session_scope
from tests.actions.conftest import (
    ALICE,
    BAD_INPUTS,
    BOB,
    assert_polite,
    buttons,
    make_tracker,
    one_text,
    render,
    slot_values,
    texts,
    token_for,
    user_event,
)

TASK_RESET = [SlotSet(name, None) for name in TASK_SLOTS]
ESCALATED = [SlotSet("escalated", True), SlotSet("csat_due", False)]
PAUSED = [ConversationPaused()]


def handoffs() -> list[m.Handoff]:
    with session_scope() as s:
        return list(s.scalars(select(m.Handoff).order_by(m.Handoff.id)))  # the bot asks no CSAT after a ticket


def tickets(conversation: str = "conv-test") -> list[m.SupportTicket]:
    with session_scope() as s:
        return list(
            s.scalars(
                select(m.SupportTicket)
                .where(m.SupportTicket.sender_id == conversation)
                .order_by(m.SupportTicket.id)
            )
        )


def feedback_rows(conversation: str = "conv-test") -> list[m.Feedback]:
    with session_scope() as s:
        return list(s.scalars(select(m.Feedback).where(m.Feedback.sender_id == conversation)))


# ---------------------------------------------------------------- human hand-over
async def test_request_human_opens_a_high_priority_ticket(fresh_db_url, domain, dispatcher):
    history = [user_event("my parcel never arrived", "track_order")]
    tracker = make_tracker(
        domain,
        text="let me talk to a human",
        intent="contact_human_agent",
        token=token_for(ALICE),
        history=history,
        slots={"order_number": "190001"},
    )
    events = await ActionRequestHuman().run(dispatcher, tracker, domain)
    assert events == TASK_RESET + ESCALATED + PAUSED  # a person takes over: the bot stops answering
    (ticket,) = tickets()
    assert (ticket.category, ticket.priority, ticket.status, ticket.customer_id) == ("handoff", "high", "open", ALICE)
    assert ticket.subject == "Customer asked for a human agent"
    assert ticket.description == "customer: my parcel never arrived\ncustomer: let me talk to a human"
    assert ticket.number.startswith("TK-") and len(ticket.number) == 9
    passed = f"I've passed this conversation to our support team (ticket {ticket.number})"
    assert one_text(dispatcher).startswith(passed)
    (handoff,) = handoffs()
    assert (handoff.reason, handoff.status, handoff.customer_id, handoff.ticket_id) == (
        "asked_for_person", "open", ALICE, ticket.id)
    summary = handoff.summary
    assert summary["order_number"] == "190001" and summary["wanted"] == "track_order"
    assert handoff.snapshot["profile"]["id"] == ALICE
    assert [t["text"] for t in handoff.transcript] == ["my parcel never arrived", "let me talk to a human"]


async def test_request_human_anonymous(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, text="human please", sender_id="anon-1")
    await ActionRequestHuman().run(dispatcher, tracker, domain)
    (ticket,) = tickets("anon-1")
    assert ticket.customer_id is None


async def test_request_human_forged_token_is_anonymous(fresh_db_url, domain, dispatcher):
    from tests.actions.conftest import forged_token_for

    tracker = make_tracker(domain, text="human", token=forged_token_for(BOB))
    await ActionRequestHuman().run(dispatcher, tracker, domain)
    assert tickets()[0].customer_id is None


# ---------------------------------------------------------------- complaint
async def test_complaint_is_logged(fresh_db_url, domain, dispatcher):
    text = "Your courier threw my parcel over the fence and it broke"
    tracker = make_tracker(domain, text=text, intent="complaint", token=token_for(BOB))
    assert await ActionLogComplaint().run(dispatcher, tracker, domain) == ESCALATED
    (ticket,) = tickets()
    assert (ticket.category, ticket.priority, ticket.subject, ticket.customer_id) == ("complaint", "high", text, BOB)
    assert f"ticket {ticket.number}" in one_text(dispatcher)
    assert one_text(dispatcher).startswith("I'm really sorry about this.")


@pytest.mark.parametrize("text", BAD_INPUTS)
async def test_junk_complaint_or_handoff_opens_no_ticket(fresh_db_url, domain, dispatcher, text):
    """Junk classified as a complaint or a request for a person is answered politely, never ticketed."""
    assert await ActionLogComplaint().run(dispatcher, make_tracker(domain, text=text, intent="complaint"), domain) == []
    assert await ActionRequestHuman().run(
        dispatcher, make_tracker(domain, text=text, intent="contact_human_agent"), domain
    ) == []
    assert tickets() == []
    assert len(dispatcher.messages) == 2
    for text in texts(dispatcher):
        assert_polite(text)
        assert "ticket" not in text and "reply here" not in text


async def test_second_escalation_reuses_the_open_ticket(fresh_db_url, domain, dispatcher):
    complaint = "Your courier threw my parcel over the fence and it broke"
    await ActionLogComplaint().run(dispatcher, make_tracker(domain, text=complaint, intent="complaint"), domain)
    tracker = make_tracker(domain, text="I want to talk to a person", intent="contact_human_agent")
    assert await ActionRequestHuman().run(dispatcher, tracker, domain) == TASK_RESET + ESCALATED + PAUSED
    (ticket,) = tickets()
    assert ticket.category == "complaint" and "[handoff] Customer asked for a human agent" in ticket.description
    reply = texts(dispatcher)[-1]
    assert reply.startswith(f"I've passed this conversation to our support team (ticket {ticket.number})")


# ---------------------------------------------------------------- fallback
def fallback_tracker(domain, streak: int, before: str | None = "greet"):  # noqa: ANN001, ANN201
    history = [user_event("hello", before)] if before else []
    history += [user_event(f"blah {i}", "nlu_fallback", confidence=0.2) for i in range(streak - 1)]
    return make_tracker(domain, text="blah now", intent="nlu_fallback", history=history)


async def test_first_fallback_asks_to_rephrase(fresh_db_url, domain, dispatcher):
    assert await ActionFallback().run(dispatcher, fallback_tracker(domain, 1), domain) == []
    assert one_text(dispatcher).startswith("Sorry, I didn't quite get that. Could you say it another way?")
    assert tickets() == []


def ranked_fallback(domain, text: str, ranking: list[tuple[str, float]], history=None, **kw):
    """A misunderstood message as Rasa parsed it: nlu_fallback first, the classifier's ranking after."""
    tracker = make_tracker(domain, text=text, intent="nlu_fallback", history=history, **kw)
    tracker.latest_message["intent"]["confidence"] = 0.35
    tracker.latest_message["intent_ranking"] = [{"name": "nlu_fallback", "confidence": 0.35}] + [
        {"name": n, "confidence": c} for n, c in ranking]
    return tracker


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        ([("cancel_order", 0.31), ("return_item", 0.25), ("check_cancellation_fee", 0.03)],
         [("cancel_order", 0.31), ("return_item", 0.25)]),
        ([("inform", 0.23), ("track_refund", 0.16), ("track_order", 0.1)],
         [("track_refund", 0.16), ("track_order", 0.1)]),
        ([("return_item", 0.2), ("get_refund", 0.15), ("track_order", 0.12)],  # one flow, one choice
         [("return_item", 0.2), ("track_order", 0.12)]),
        ([("affirm", 0.2), ("deny", 0.16), ("change_order", 0.1)], []),  # too little belief in a task
        ([("greet", 0.06), ("thank_you", 0.06)], []),
        ([("payment_issue", 0.3), ("greet", 0.2)], [("payment_issue", 0.3)]),
    ],
)
def test_clarification_choices_are_likely_tasks_of_different_flows(ranking, expected):
    message = {"intent_ranking": [{"name": "nlu_fallback", "confidence": 0.35}]
               + [{"name": n, "confidence": c} for n, c in ranking]}
    assert clarification_choices(message) == expected


async def test_first_fallback_asks_which_task_with_buttons_and_carries_the_order(fresh_db_url, domain, dispatcher):
    tracker = ranked_fallback(domain, "cancel or return 190002 whatever is easier",
                              [("cancel_order", 0.31), ("return_item", 0.25)],
                              entities=[{"entity": "order_number", "value": "190002"}])
    assert await ActionFallback().run(dispatcher, tracker, domain) == []
    (message,) = dispatcher.messages
    assert render(message) == "Sorry, I'm not sure I got that. Do you want to cancel an order or return an item?"
    assert buttons(message) == [{"title": "Cancel an order", "payload": '/cancel_order{"order_number": "190002"}'},
                                {"title": "Return an item", "payload": '/return_item{"order_number": "190002"}'}]
    assert tickets() == []


async def test_chinese_clarification_buttons_are_chinese(fresh_db_url, domain, dispatcher):
    tracker = ranked_fallback(domain, "订单有问题", [("contact_customer_service", 0.17), ("payment_issue", 0.15)],
                              slots={"language": "zh"})
    await ActionFallback().run(dispatcher, tracker, domain)
    (message,) = dispatcher.messages
    assert render(message, "zh") == "不好意思，我不太确定您的意思。您是想联系客服，还是处理付款问题？"
    assert buttons(message, "zh") == [{"title": "联系客服", "payload": "/contact_customer_service"},
                                      {"title": "处理付款问题", "payload": "/payment_issue"}]


async def test_a_second_miss_is_not_guessed_again_and_junk_never_is(fresh_db_url, domain, dispatcher, monkeypatch):
    three = dataclasses.replace(handoff.config(), triggers=dataclasses.replace(handoff.config().triggers, fallbacks=3))
    monkeypatch.setattr(handoff, "config", lambda: three)  # a shop that hands over at the third miss
    history = [user_event("hi", "greet"), user_event("blah", "nlu_fallback", confidence=0.35)]
    tracker = ranked_fallback(domain, "cancel or return it", [("cancel_order", 0.31), ("return_item", 0.25)],
                              history=history)
    await ActionFallback().run(dispatcher, tracker, domain)
    assert one_text(dispatcher).startswith("Sorry, I didn't quite get that.")
    dispatcher.messages.clear()
    junk = ranked_fallback(domain, "<script>alert(1)</script>", [("cancel_order", 0.31), ("return_item", 0.25)])
    await ActionFallback().run(dispatcher, junk, domain)
    assert one_text(dispatcher).startswith("Sorry, I didn't quite get that.")


async def test_second_fallback_in_a_row_opens_a_ticket(fresh_db_url, domain, dispatcher):
    await ActionFallback().run(dispatcher, fallback_tracker(domain, 2), domain)
    (ticket,) = tickets()
    assert (ticket.category, ticket.priority) == ("fallback", "normal")
    assert ticket.subject == "Assistant could not understand the customer"
    assert "customer: blah now" in ticket.description
    assert f"(ticket {ticket.number})" in texts(dispatcher)[-1]
    assert [h.reason for h in handoffs()] == ["fallbacks"]


async def test_third_fallback_opens_no_second_ticket(fresh_db_url, domain, dispatcher):
    await ActionFallback().run(dispatcher, fallback_tracker(domain, 2), domain)
    # the bot is paused after the second; a third (e.g. after the agent handed back) reuses both
    assert await ActionFallback().run(dispatcher, fallback_tracker(domain, 3), domain) == ESCALATED + PAUSED
    (ticket,) = tickets()
    assert f"(ticket {ticket.number})" in texts(dispatcher)[-1]
    assert len(handoffs()) == 1


@pytest.mark.parametrize(
    "streak",
    [
        ["", "a" * 20_000],  # the report: an empty message, then 20,000 a's
        ["hello", "'; DROP TABLE orders; --"],
        ["<script>alert(1)</script>", "I need help with my order"],
        ["asdkjfhaskdjfh", "qwrtzp lkjhgf mnbvcx"],
    ],
)
async def test_junk_fallbacks_open_no_ticket(fresh_db_url, domain, dispatcher, streak):
    history = [user_event("hi", "greet"), user_event(streak[0], "nlu_fallback", confidence=0.1)]
    tracker = make_tracker(domain, text=streak[1], intent="nlu_fallback", history=history)
    assert await ActionFallback().run(dispatcher, tracker, domain) == []
    assert tickets() == []
    assert one_text(dispatcher).startswith("Sorry, I didn't quite get that.")
    assert "reply here or by email" not in one_text(dispatcher)


async def test_understood_message_resets_the_fallback_streak(fresh_db_url, domain, dispatcher):
    history = [user_event("blah", "nlu_fallback"), user_event("where is my order", "track_order")]
    tracker = make_tracker(domain, text="blah again", intent="nlu_fallback", history=history)
    await ActionFallback().run(dispatcher, tracker, domain)
    assert one_text(dispatcher).startswith("Sorry, I didn't quite get that.")
    assert tickets() == []


# ---------------------------------------------------------------- task control, inform
async def test_stop_task_clears_task_slots(domain, dispatcher):
    tracker = make_tracker(domain, text="stop", intent="stop", slots={"order_number": "190001", "cancel_confirm": True})
    events = await ActionStopTask().run(dispatcher, tracker, domain)
    assert events == TASK_RESET
    assert slot_values(events)["cancel_confirm"] is None
    assert one_text(dispatcher) == "No problem, I've stopped that. Is there anything else I can help with?"


async def test_inform_with_order_number_offers_actions(domain, dispatcher):
    tracker = make_tracker(
        domain,
        text="190002",
        intent="inform",
        slots={"order_number": "190002"},
        entities=[{"entity": "order_number", "value": "190002", "start": 0, "end": 6}],
    )
    assert await ActionHandleInform().run(dispatcher, tracker, domain) == []
    msg = dispatcher.messages[0]
    assert one_text(dispatcher) == "What would you like to do with order 190002?"
    number = '{"order_number": "190002"}'  # carried in the buttons: the next flow does not ask for it
    assert [b["payload"] for b in msg["buttons"]] == [
        f"/track_order{number}", f"/cancel_order{number}", f"/get_refund{number}", f"/get_invoice{number}"
    ]


async def test_inform_with_a_value_but_no_order_number(domain, dispatcher):
    tracker = make_tracker(domain, text="bob@example.com", intent="inform", slots={"order_number": "190002"},
                           entities=[{"entity": "email", "value": "bob@example.com", "start": 0, "end": 15}])
    await ActionHandleInform().run(dispatcher, tracker, domain)
    assert one_text(dispatcher) == "Thanks! What would you like me to do with that?"
    assert "buttons" not in dispatcher.messages[0] or not dispatcher.messages[0]["buttons"]


async def test_inform_that_says_nothing_offers_the_main_tasks(domain, dispatcher):
    # the widget names its language: the NLU's language entity is no value the customer gave
    tracker = make_tracker(domain, text="something about my order", intent="inform", slots={"order_number": "190002"},
                           entities=[{"entity": "language", "value": "en", "start": 0, "end": 0}])
    await ActionHandleInform().run(dispatcher, tracker, domain)
    assert render(dispatcher.messages[0]) == "Happy to help with that. What would you like to do?"
    payloads = [b["payload"] for b in buttons(dispatcher.messages[0])]
    assert payloads[0] == "/track_order" and "/contact_human_agent" in payloads


# ---------------------------------------------------------------- feedback form
def feedback_form(domain, requested, value, **kw):  # noqa: ANN001, ANN201
    return make_tracker(domain, form="feedback_form", requested_slot=requested, candidates={requested: value}, **kw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", "5"),
        (" 1 ", "1"),
        ("4/5", "4"),
        ("I'd give it a 3", "3"),
        ("five stars!", "5"),
        ("Two.", "2"),
        ("FOUR", "4"),
        ("honestly, four", "4"),  # "one" inside "honestly" is not a rating
        ("someone was helpful: three", "3"),
        ("五分", "5"),
        ("给4分吧", "4"),
    ],
)
async def test_feedback_rating_is_parsed(domain, dispatcher, value, expected):
    events = await ValidateFeedbackForm().run(dispatcher, feedback_form(domain, "feedback_rating", value), domain)
    assert slot_values(events) == {"feedback_rating": expected}
    assert dispatcher.messages == []


@pytest.mark.parametrize("value", ["10", "0", "great", "none", "done", "phone was fine", "", None, "6 stars"])
async def test_feedback_rating_without_a_rating_is_asked_again(domain, dispatcher, value):
    events = await ValidateFeedbackForm().run(dispatcher, feedback_form(domain, "feedback_rating", value), domain)
    assert slot_values(events) == {"feedback_rating": None}
    assert one_text(dispatcher) == "Please pick a number from 1 to 5."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Quick   and\nfriendly ", "Quick and friendly"),
        ("no", ""),
        ("No thanks.", ""),
        ("skip", ""),
        ("没有", ""),
        ("跳过", ""),
        ("x" * 3000, "x" * 2000),
    ],
)
async def test_feedback_comment(domain, dispatcher, value, expected):
    events = await ValidateFeedbackForm().run(dispatcher, feedback_form(domain, "feedback_comment", value), domain)
    assert slot_values(events) == {"feedback_comment": expected}


@pytest.mark.parametrize("value", BAD_INPUTS)
async def test_feedback_form_bad_input_never_raises(domain, dispatcher, value):
    for slot in ("feedback_rating", "feedback_comment"):
        events = await ValidateFeedbackForm().run(dispatcher, feedback_form(domain, slot, value), domain)
        assert slot in slot_values(events)
    for text in texts(dispatcher):
        assert_polite(text)


async def test_ask_feedback_questions(domain, dispatcher):
    await ActionAskFeedbackRating().run(dispatcher, make_tracker(domain), domain)
    await ActionAskFeedbackComment().run(dispatcher, make_tracker(domain), domain)
    rating, comment = dispatcher.messages
    assert "from 1 (poor) to 5 (excellent)" in render(rating)
    assert [b["payload"] for b in buttons(rating)] == ["5", "4", "3", "2", "1"]
    assert 'Type "no" to skip.' in render(comment)


async def test_save_good_feedback(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(
        domain, token=token_for(ALICE), slots={"feedback_rating": "4", "feedback_comment": "Quick and friendly"}
    )
    events = await ActionSaveFeedback().run(dispatcher, tracker, domain)
    assert events == [SlotSet("feedback_rating", None), SlotSet("feedback_comment", None)]
    (row,) = feedback_rows()
    assert (row.rating, row.comment, row.customer_id) == (4, "Quick and friendly", ALICE)
    assert tickets() == []
    assert one_text(dispatcher) == "Thank you for your feedback! It goes straight to our team."


async def test_save_low_feedback_opens_a_ticket(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, slots={"feedback_rating": "2", "feedback_comment": ""})
    await ActionSaveFeedback().run(dispatcher, tracker, domain)
    (row,) = feedback_rows()
    assert (row.rating, row.comment, row.customer_id) == (2, "", None)
    (ticket,) = tickets()
    assert (ticket.category, ticket.priority, ticket.subject) == ("feedback", "high", "Low rating (2/5)")
    assert f"(ticket {ticket.number})" in one_text(dispatcher)


async def test_save_feedback_without_rating_saves_nothing(fresh_db_url, domain, dispatcher):
    events = await ActionSaveFeedback().run(dispatcher, make_tracker(domain), domain)
    assert events == [SlotSet("feedback_rating", None), SlotSet("feedback_comment", None)]
    assert feedback_rows() == [] and dispatcher.messages == []


async def test_save_feedback_with_garbage_rating_is_polite(fresh_db_url, domain, dispatcher):
    tracker = make_tracker(domain, slots={"feedback_rating": "9"})
    await ActionSaveFeedback().run(dispatcher, tracker, domain)
    assert feedback_rows() == []
    assert one_text(dispatcher) == "Please rate from 1 to 5."


async def test_a_second_fallback_in_the_same_turn_hands_back_to_the_form_or_listens(fresh_db_url, domain, dispatcher):
    """The fuzz test's seed 972933586: in the invoice form a garbled "send me the invoice for order 190003¹r"
    was rejected by the form; Rasa's core fallback then chose action_fallback again and again (ten
    times, Rasa's limit) and the customer got "something went wrong". The second run in a turn now
    says nothing more and lets the form ask its question again (or the bot listen)."""
    ran = [{"event": "action_execution_rejected", "name": "invoice_form"},
           {"event": "action", "name": "action_fallback"},
           {"event": "bot", "text": "Sorry, I didn't quite get that."}]
    tracker = make_tracker(domain, text="send me the invoice for order 190003\u00b9r", intent="get_invoice",
                           form="invoice_form", requested_slot="email")
    tracker.events.extend(ran)
    assert await ActionFallback().run(dispatcher, tracker, domain) == [FollowupAction("invoice_form")]
    assert dispatcher.messages == []
    outside = fallback_tracker(domain, 1)
    outside.events.extend(ran[1:])
    assert await ActionFallback().run(dispatcher, outside, domain) == [FollowupAction("action_listen")]
    assert dispatcher.messages == [] and tickets() == []


@pytest.mark.parametrize("comment", ["actually 2 items were broken", "the box was fine, rather 3 days late"])
async def test_a_comment_with_a_number_is_a_comment(db_url, domain, dispatcher, comment):
    tracker = feedback_form(domain, "feedback_comment", comment, text=comment, slots={"feedback_rating": "4"})
    slots = slot_values(await ValidateFeedbackForm().run(dispatcher, tracker, domain))
    assert "feedback_rating" not in slots and slots["feedback_comment"] == comment


async def test_a_corrected_rating_where_the_comment_is_asked(db_url, domain, dispatcher):
    text = "no actually make that a 5"
    tracker = feedback_form(domain, "feedback_comment", text, text=text, slots={"feedback_rating": "3"})
    slots = slot_values(await ValidateFeedbackForm().run(dispatcher, tracker, domain))
    assert slots["feedback_rating"] == "5" and slots["feedback_comment"] is None  # the comment is asked again


async def test_gibberish_where_an_order_number_is_asked_is_an_unfit_answer(db_url, domain, dispatcher):
    """Not the misunderstanding streak (a person at the second): what an order number looks like, counted."""
    tracker = make_tracker(domain, text="abc", intent="nlu_fallback", form="cancel_order_form",
                           requested_slot="order_number")
    events = await ActionFallback().run(dispatcher, tracker, domain)
    assert "6 digits" in render(dispatcher.messages[0])
    assert slot_values(events) == {"repair_misses": "order_number:1"}
