"""Several requests in one message (issue 25), through the real servers: each request handled in turn.

The channels' shared handler splits "cancel 190002 and tell me where 190003 is" into two turns
(concierge_rasa/channels/requests.py): the first request now, the second right after it, or once
the form the first opened is done. Demo customers and orders: bot/seed_demo.md.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Order
from tests.e2e.chat import Chat, own_order, refunds_of, signed_in
from tests.stack import Servers, tracker_events, wait_turn_end

pytestmark = pytest.mark.e2e

ALICE = 1


def status_of(db, number: str) -> str:
    with Session(db) as s:
        return s.scalars(select(Order.status).where(Order.number == number)).one()


def customer_texts(servers: Servers, sender: str, turns: int) -> list[str]:
    """The customer's messages as Rasa stored them, once the turn of the ``turns``-th has been saved."""
    wait_turn_end(servers.tracker_db, sender, turns - 1)
    return [e.get("text") or "" for e in tracker_events(servers.tracker_db, sender) if e.get("event") == "user"]


def test_cancel_one_order_and_track_another(servers: Servers, db) -> None:
    """The issue's message: the cancellation is confirmed first, then the other order is tracked."""
    n = own_order(db, "190002")  # processing: cancellable
    chat = Chat(servers, signed_in(ALICE))
    first = chat.text(chat.say(f"cancel {n} and tell me where 190003 is"))
    assert "cancel it" in first.lower() and n in first
    assert "#190003" not in first  # the second request waits for the form
    assert status_of(db, n) == "processing"
    done = chat.text(chat.say("yes"))
    assert "cancelled" in done.lower()
    assert "#190003" in done and "delivered" in done.lower()  # then the second request, unasked
    # the rating question once both are answered, not between them
    assert "how would you rate" in done.lower() and done.lower().index("how would you rate") > done.index("#190003")
    assert status_of(db, n) == "cancelled"
    assert customer_texts(servers, chat.sender, 3) == [f"cancel {n}", "yes", "tell me where 190003 is"]


def test_two_questions_are_both_answered_at_once(servers: Servers) -> None:
    """No form between them: both answers in the same reply, in the order asked."""
    chat = Chat(servers, signed_in(ALICE))
    text = chat.text(chat.say("where is my order 190001 and how long does delivery take"))
    assert "#190001" in text
    assert "business days" in text.lower()
    assert text.index("#190001") < text.lower().index("business days")


def test_the_second_request_waits_while_the_customer_stops_the_first(servers: Servers, db) -> None:
    """Anonymous, typos: the cancellation asks for the email, the customer drops it, the other question
    is answered then."""
    n = own_order(db, "190002")
    chat = Chat(servers)
    first = chat.text(chat.say(f"can u cancel order {n}? also what payment methods do u take"))
    assert "email" in first.lower()
    assert "visa" not in first.lower() and "paypal" not in first.lower()
    after = chat.text(chat.say("actually never mind, stop"))
    assert "paypal" in after.lower() or "visa" in after.lower()
    assert status_of(db, n) == "processing"


def test_invoice_then_email_change(servers: Servers) -> None:
    """"i need an invoice for 190001 and then change my email": the invoice, then the email question."""
    chat = Chat(servers, signed_in(ALICE))
    text = chat.text(chat.say("i need an invoice for 190001 and then change my email"))
    assert "190001" in text and "invoice" in text.lower()
    assert "email" in text.lower().split("invoice")[-1]  # the email change asks after the invoice


def test_one_request_with_and_stays_whole(servers: Servers, db) -> None:
    """"arrived broken and I want a refund" is one request: one customer turn, the refund flow."""
    n = own_order(db, "190003")
    chat = Chat(servers, signed_in(ALICE))
    chat.say(f"my order {n} arrived broken and I want a refund")
    assert customer_texts(servers, chat.sender, 1) == [f"my order {n} arrived broken and I want a refund"]
    assert refunds_of(db, n) == 0


def test_thanks_and_bye_stays_whole(servers: Servers) -> None:
    chat = Chat(servers)
    chat.say("thanks a lot and bye")
    assert customer_texts(servers, chat.sender, 1) == ["thanks a lot and bye"]


def test_a_refused_cancellation_then_the_policy_question(servers: Servers, db) -> None:
    """"pls", "ur", a comma: the customer says no to the cancellation, the policy comes after."""
    n = own_order(db, "190002")
    chat = Chat(servers, signed_in(ALICE))
    first = chat.text(chat.say(f"cancel order {n} pls, and whats ur refund policy"))
    assert "cancel it" in first.lower() and "30 days" not in first
    after = chat.text(chat.say("no keep it"))
    assert "30 days" in after
    assert status_of(db, n) == "processing"


def test_tracking_then_recommendations(servers: Servers) -> None:
    chat = Chat(servers, signed_in(ALICE))
    text = chat.text(chat.say("track 190001 then recommend me something"))
    assert "#190001" in text
    assert "you might like" in text.lower() or "popular picks" in text.lower()
    assert text.index("#190001") < max(text.lower().find("you might like"), text.lower().find("popular picks"))


def test_two_shop_questions_from_an_anonymous_customer(servers: Servers) -> None:
    chat = Chat(servers)
    text = chat.text(chat.say("how long does delivery take and can i pay with paypal?"))
    assert "business days" in text.lower()
    assert "paypal" in text.lower()


def test_a_question_first_then_a_task(servers: Servers) -> None:
    """In the order the customer asked: the payment methods first, then the tracking."""
    chat = Chat(servers, signed_in(ALICE))
    text = chat.text(chat.say("what payment methods do you accept? also where is my order 190003"))
    assert "paypal" in text.lower() and "#190003" in text
    assert text.lower().index("paypal") < text.index("#190003")


def test_two_requests_in_chinese(servers: Servers) -> None:
    chat = Chat(servers, signed_in(ALICE))
    text = chat.text(chat.say("帮我查一下订单190003到哪了，另外你们支持哪些付款方式"))
    assert "190003" in text
    assert "PayPal" in text or "支付宝" in text or "付款" in text
