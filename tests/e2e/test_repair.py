"""Conversation repair (issue 25) against the real Rasa server, action server and database.

Customers answer something else than what they were asked: an item that is not in the order, a
"yes" where an item was asked, another request in the middle of a form, a corrected order number,
"I don't know". Each test is one conversation as a customer would write it; the five conversations
of the issue come first. Demo customers and orders: bot/seed_demo.md.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Order, SupportTicket
from tests.e2e.chat import Chat as _Chat
from tests.e2e.chat import item_names, own_order, refunds_of, signed_in
from tests.stack import Servers

pytestmark = pytest.mark.e2e

ALICE, BOB, CARLA, DAVID = 1, 2, 3, 4
ITEM_QUESTION = "Which item from order"
ORDER_QUESTION = "What's the order number"


class Chat(_Chat):
    prefix = "repair"


# ---------------------------------------------------------------- the five conversations of issue 25
def test_unknown_item_offers_the_items_then_a_way_out_and_a_new_request_leaves(servers: Servers, db) -> None:
    """1: an item that is not in the order, a "yes", then another request: never trapped."""
    n = own_order(db, "190009")
    chat = Chat(servers, signed_in(CARLA))
    names = item_names(db, n)
    first = chat.say(f"I want to return something from {n}")
    assert ITEM_QUESTION in chat.text(first)
    miss = chat.say("the headphones, they stopped working")
    assert "couldn't find" in chat.text(miss).lower()
    titles = {b["title"] for b in chat.buttons(miss)}
    assert set(names) <= titles, (names, titles)  # the valid items as buttons
    second = chat.say("yes")
    payloads = {b["payload"] for b in chat.buttons(second)}
    assert {"/stop", "/contact_human_agent"} <= payloads  # after two misses: stop or a person
    switched = chat.say("recommend me something")
    text = chat.text(switched)
    assert ITEM_QUESTION not in text and "couldn't find" not in text.lower()
    assert "might like" in text or "popular picks" in text
    assert chat.longest_run_of(ITEM_QUESTION) <= 3
    assert refunds_of(db, n) == 0


def test_complaint_uses_the_order_number_in_the_message(servers: Servers, db) -> None:
    """2: the order number in a complaint is used, not asked for again."""
    n = own_order(db, "190012")
    chat = Chat(servers)
    reply = chat.say(f"order {n} arrived broken and nobody answers my emails, this is ridiculous")
    text = chat.text(reply)
    assert n in text and "tell me the order number" not in text
    assert "Smartphone" not in text  # nothing about the order is shown to someone not verified
    with Session(db) as s:
        ticket = s.scalars(
            select(SupportTicket).where(SupportTicket.sender_id == chat.sender)
        ).one()
    assert ticket.category == "complaint" and n in (ticket.subject + ticket.description)


def test_corrected_order_number_replaces_the_first_and_is_verified(servers: Servers) -> None:
    """3: "sorry wrong number, I meant 190003" while the email is asked: the answer is about 190003."""
    chat = Chat(servers)
    assert "email" in chat.text(chat.say("where is my order 190001")).lower()
    corrected = chat.text(chat.say("sorry wrong number, I meant 190003"))
    assert "190003" in corrected and "email" in corrected.lower()
    answer = chat.text(chat.say("alice.martin@example.com"))
    assert "#190003" in answer and "#190001" not in answer


def test_other_request_inside_the_return_switches_to_it(servers: Servers, db) -> None:
    """4: "where is order 190013?" in the return for 190012: tracking 190013, the return offered back."""
    n = own_order(db, "190012")
    chat = Chat(servers, signed_in(DAVID))
    first = chat.text(chat.say(f"I want to return order {n}"))
    assert ITEM_QUESTION in first
    reply = chat.say("actually forget that, can you tell me where order 190013 is?")
    text = chat.text(reply)
    assert "#190013" in text and "was delivered" in text
    assert "couldn't find" not in text.lower() and ITEM_QUESTION not in text
    assert any(n in b["payload"] for b in chat.buttons(reply))  # the return can be resumed
    assert refunds_of(db, n) == 0


def test_unknown_order_number_anonymous_gets_where_to_find_it_and_a_person(servers: Servers) -> None:
    """5 (anonymous): "I don't know the order number": where to find it and a person, not the question."""
    chat = Chat(servers)
    assert ORDER_QUESTION in chat.text(chat.say("where is my parcel?"))
    reply = chat.say("I don't know the order number")
    text = chat.text(reply)
    assert ORDER_QUESTION not in text and "What would you like me to do" not in text
    assert "confirmation email" in text
    assert "/contact_human_agent" in {b["payload"] for b in chat.buttons(reply)}


def test_unknown_order_number_signed_in_gets_recent_orders_as_buttons(servers: Servers) -> None:
    """5 (signed in): the recent orders as buttons instead of the same question."""
    chat = Chat(servers, signed_in(ALICE))
    assert ORDER_QUESTION in chat.text(chat.say("I want to cancel an order"))
    reply = chat.say("no idea what the number is")
    assert ORDER_QUESTION not in chat.text(reply)
    payloads = " ".join(b["payload"] for b in chat.buttons(reply))
    assert "190002" in payloads and "190001" in payloads
    picked = chat.text(chat.say("190002"))  # a button's answer moves the form on (whatever the order's state now)
    assert "190002" in picked and ORDER_QUESTION not in picked


# ---------------------------------------------------------------- more of each pattern
def test_three_misses_stop_the_question_and_offer_a_person(servers: Servers, db) -> None:
    """Answer that doesn't fit, three times: the question is not asked a fourth time."""
    n = own_order(db, "190009")
    chat = Chat(servers, signed_in(CARLA))
    chat.say(f"i wanna return smth from order {n}")
    chat.say("the headphones")
    chat.say("the blue ones")
    last = chat.say("the speaker")
    assert ITEM_QUESTION not in chat.text(last)
    assert "/contact_human_agent" in {b["payload"] for b in chat.buttons(last)}
    assert chat.longest_run_of(ITEM_QUESTION) <= 3
    # the form is over: a new request is served normally
    assert "#190010" in chat.text(chat.say("where is order 190010"))
    assert refunds_of(db, n) == 0


def test_right_item_after_a_miss_goes_on_with_the_return(servers: Servers, db) -> None:
    n = own_order(db, "190009")
    chat = Chat(servers, signed_in(CARLA))
    names = item_names(db, n)
    chat.say(f"return something from {n} pls")
    chat.say("the headphones")
    reason = chat.text(chat.say(names[0]))
    assert "reason" in reason.lower()


def test_correction_to_someone_elses_order_is_checked(servers: Servers, db) -> None:
    """Correction re-checks ownership: Alice, signed in, corrects to Bob's order."""
    n = own_order(db, "190002")
    chat = Chat(servers, signed_in(ALICE))
    assert "Shall I cancel it?" in chat.text(chat.say(f"cancel order {n}"))
    text = chat.text(chat.say("oops i meant 190005"))
    assert "couldn't find order #190005" in text
    with Session(db) as s:
        assert s.scalar(select(Order.status).where(Order.number == "190005")) == "pending"


def test_correction_signed_in_tracks_the_new_order(servers: Servers) -> None:
    chat = Chat(servers, signed_in(ALICE))
    chat.say("i want to cancel 190001")  # shipped: refused, the form stops
    text = chat.text(chat.say("where is 190003"))
    assert "#190003" in text


def test_complaint_with_order_signed_in_offers_a_return_for_that_order(servers: Servers, db) -> None:
    n = own_order(db, "190012")
    chat = Chat(servers, signed_in(DAVID))
    reply = chat.say(f"my order {n} came damaged, really not happy")
    assert n in chat.text(reply)
    assert any(n in b["payload"] for b in chat.buttons(reply))


def test_tracking_inside_the_cancel_form_switches(servers: Servers) -> None:
    chat = Chat(servers, signed_in(ALICE))
    assert ORDER_QUESTION in chat.text(chat.say("I need to cancel an order"))
    text = chat.text(chat.say("hang on, where is order 190001 right now?"))
    assert "#190001" in text and "on its way" in text


def test_dont_know_the_email_offers_a_person(servers: Servers) -> None:
    chat = Chat(servers)
    chat.say("where is order 190001")
    reply = chat.say("i dont know which email i used")
    assert "/contact_human_agent" in {b["payload"] for b in chat.buttons(reply)}
    assert "what's the email address on that order" not in chat.text(reply).lower()


def test_malformed_order_numbers_three_times_stop_the_question(servers: Servers) -> None:
    chat = Chat(servers)
    chat.say("wheres my order")
    chat.say("12345")
    second = chat.say("its 99")
    assert "/contact_human_agent" in {b["payload"] for b in chat.buttons(second)}
    last = chat.say("1234")
    assert ORDER_QUESTION not in chat.text(last)
    assert chat.longest_run_of(ORDER_QUESTION) <= 3


def test_dont_know_in_the_invoice_form_then_the_number(servers: Servers) -> None:
    chat = Chat(servers)
    assert ORDER_QUESTION in chat.text(chat.say("i need an invoice pls"))
    help_text = chat.text(chat.say("no clue, i dont have the number"))
    assert "confirmation email" in help_text and ORDER_QUESTION not in help_text
    assert "email" in chat.text(chat.say("ok got it: 190003")).lower()
    assert "INV-190003" in chat.text(chat.say("alice.martin@example.com"))


def test_recommendations_inside_the_address_change_leave_it(servers: Servers, db) -> None:
    n = own_order(db, "190002")
    with Session(db) as s:
        address_before = s.scalar(select(Order.shipping_address_id).where(Order.number == n))
    chat = Chat(servers, signed_in(ALICE))
    asked = chat.text(chat.say(f"i need to change the delivery address for {n}"))
    assert "new shipping address" in asked
    text = chat.text(chat.say("can you recommend me something"))
    assert "might like" in text and "new shipping address" not in text
    with Session(db) as s:
        before = s.scalar(select(Order.shipping_address_id).where(Order.number == n))
    assert before == address_before  # unchanged


def test_tracking_request_instead_of_a_feedback_rating_switches(servers: Servers) -> None:
    chat = Chat(servers, signed_in(CARLA))
    assert "1 (poor) to 5" in chat.text(chat.say("I'd like to leave some feedback"))
    text = chat.text(chat.say("actually where is order 190010?"))
    assert "#190010" in text and "Please pick a number" not in text


def test_yes_to_the_order_number_question_is_explained_not_looped(servers: Servers) -> None:
    chat = Chat(servers)
    chat.say("where is my package")
    reply = chat.text(chat.say("yes"))
    assert "6 digits" in reply and "anything else" not in reply.lower()
    assert "email" in chat.text(chat.say("190010")).lower()  # the form goes on with a real number


def test_three_yeses_to_the_order_number_question_stop_it(servers: Servers) -> None:
    chat = Chat(servers)
    chat.say("where is my package??")
    chat.say("yes")
    assert "/contact_human_agent" in {b["payload"] for b in chat.buttons(chat.say("yeah"))}
    last = chat.say("yes")
    assert ORDER_QUESTION not in chat.text(last) and "rather than ask again" in chat.text(last)
    assert chat.longest_run_of(ORDER_QUESTION) <= 3


def test_correction_in_the_cancel_form_checks_the_new_order(servers: Servers, db) -> None:
    """Alice corrects to her shipped order: the new number gets the cancellation rules, the old stays."""
    n = own_order(db, "190002")
    chat = Chat(servers, signed_in(ALICE))
    assert "Shall I cancel it?" in chat.text(chat.say(f"cancel my order {n} please"))
    text = chat.text(chat.say("wait no, wrong one, I meant 190001"))
    assert "190001" in text and "already shipped" in text
    with Session(db) as s:
        assert s.scalar(select(Order.status).where(Order.number == n)) == "processing"


def test_correction_before_verification_verifies_the_new_order(servers: Servers, db) -> None:
    n = own_order(db, "190002")
    chat = Chat(servers)
    assert "email" in chat.text(chat.say("i want to cancel order 190005")).lower()
    assert n in chat.text(chat.say(f"oops typo, it's {n}"))
    assert "Shall I cancel it?" in chat.text(chat.say("alice.martin@example.com"))


def test_dont_know_outside_a_task_signed_in_lists_orders(servers: Servers) -> None:
    chat = Chat(servers, signed_in(DAVID))
    reply = chat.say("i dont know my order number")
    payloads = " ".join(b["payload"] for b in chat.buttons(reply))
    assert "190011" in payloads and "190012" in payloads


def test_recommendations_inside_refund_tracking_leave_it(servers: Servers) -> None:
    chat = Chat(servers)
    assert ORDER_QUESTION in chat.text(chat.say("where is my refund"))
    text = chat.text(chat.say("recommend me something"))
    assert "popular picks" in text and ORDER_QUESTION not in text


def test_resume_button_goes_back_to_the_return(servers: Servers, db) -> None:
    """Task digression, then the button back: the return goes on for the first order."""
    n = own_order(db, "190012")
    chat = Chat(servers, signed_in(DAVID))
    chat.say(f"I want to return order {n}")
    reply = chat.say("hold on, where is order 190013?")
    back = next(b["payload"] for b in chat.buttons(reply) if n in b["payload"])
    again = chat.text(chat.say(back))
    assert n in again and ITEM_QUESTION in again


def test_an_ambiguous_request_is_clarified_with_buttons_not_a_rephrase(servers: Servers) -> None:
    """Clarification (issue 25 §1): the classifier is torn between two tasks, so the bot asks which one,
    with a button each that carries the order number; tapping one starts that task."""
    chat = Chat(servers)
    reply = chat.say("cancel or return 190002 whatever is easier")
    assert "Do you want to cancel an order or return an item?" in chat.text(reply)
    assert [(b["title"], b["payload"]) for b in chat.buttons(reply)] == [
        ("Cancel an order", '/cancel_order{"order_number": "190002"}'),
        ("Return an item", '/return_item{"order_number": "190002"}')]
    asked = chat.text(chat.say('/cancel_order{"order_number": "190002"}'))
    assert "email" in asked.lower()  # the cancellation of #190002 goes on: who is asking?
