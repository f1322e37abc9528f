"""Whole conversations over REST against the real Rasa server, action server and database."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import Customer, Interaction, Order, Refund, SupportTicket
from bot.services import refunds as refund_service
from bot.services.identity import sign_token
from tests.stack import SECRET, Servers, tracker_events

pytestmark = pytest.mark.e2e


def new_sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def pick_order(db, status: str, *, not_customer: int | None = None) -> tuple[str, str, int]:
    """(order number, owner's email, owner's id) of an order in `status`."""
    with Session(db) as s:
        q = select(Order.number, Customer.email, Customer.id).join(Customer).where(Order.status == status)
        if not_customer is not None:
            q = q.where(Order.customer_id != not_customer)
        row = s.execute(q.order_by(Order.id.desc()).limit(1)).one()
        return row[0], row[1], row[2]


def pick_refundable(db) -> tuple[str, str, int]:
    with Session(db) as s:
        rows = s.execute(
            select(Order.number, Customer.email, Customer.id)
            .join(Customer)
            .where(Order.status == "delivered")
            .order_by(Order.created_at.desc())
            .limit(200)
        ).all()
        for number, email, cid in rows:
            if refund_service.check_refund_eligibility(s, cid, number).eligible:
                return number, email, cid
    pytest.fail("the seed has no refund-eligible order")


def status_of(db, number: str) -> str:
    with Session(db) as s:
        return s.scalar(select(Order.status).where(Order.number == number))


def count(db, model) -> int:
    with Session(db) as s:
        return s.scalar(select(func.count()).select_from(model))


def token_for(customer_id: int, ttl: int = 3600, now: float | None = None) -> dict:
    return {"customer_token": sign_token(customer_id, ttl_s=ttl, secret=SECRET, now=now)}


def test_greeting(servers: Servers) -> None:
    reply = servers.text(new_sender(), "hi there")
    assert "Concierge" in reply


def test_track_order_with_in_chat_verification(servers: Servers, db) -> None:
    number, email, _ = pick_order(db, "shipped")
    me = new_sender()
    first = servers.text(me, f"where is my order {number}?")
    assert "email" in first.lower()
    assert "on its way" not in first  # nothing revealed before verification
    second = servers.text(me, email)
    assert f"#{number}" in second and "on its way" in second


def test_someone_elses_order_is_not_revealed(servers: Servers, db) -> None:
    number, owner_email, owner = pick_order(db, "shipped")
    _, other_email, other = pick_order(db, "delivered", not_customer=owner)
    me = new_sender()
    servers.text(me, f"track order {number}")
    reply = servers.text(me, other_email)  # an attacker's own, real email
    assert "couldn't match" in reply
    assert "on its way" not in reply and owner_email not in reply
    # the same customer, verified by website token, asking for the stranger's order
    me2 = new_sender()
    reply = servers.text(me2, f"where is order {number}", token_for(other))
    # the stranger's order is not described (the customer's own recent orders may follow)
    assert "couldn't find order" in reply.lower() and f"Order #{number} (" not in reply


def test_guessed_number_and_mismatched_email_get_the_same_answer(servers: Servers, db) -> None:
    number, _, _ = pick_order(db, "processing")
    a, b = new_sender(), new_sender()
    servers.text(a, "track my order 199999")
    guessed = servers.text(a, "someone@example.com")
    servers.text(b, f"track my order {number}")
    mismatched = servers.text(b, "someone@example.com")
    assert guessed == mismatched and "couldn't match" in guessed


@pytest.mark.parametrize("token", ["garbage", "eyJjaWQiOjF9.AAAA", ""])
def test_forged_token_grants_nothing(servers: Servers, token: str) -> None:
    reply = servers.text(new_sender(), "where is my order?", {"customer_token": token})
    assert "order number" in reply.lower()  # asked to identify, no orders listed
    assert "recent orders" not in reply


def test_expired_token_grants_nothing(servers: Servers, db) -> None:
    _, _, cid = pick_order(db, "shipped")
    meta = token_for(cid, ttl=60, now=1_000_000)  # expired long ago
    reply = servers.text(new_sender(), "where is my order?", meta)
    assert "recent orders" not in reply and "order number" in reply.lower()


def test_valid_token_lists_own_recent_orders(servers: Servers, db) -> None:
    number, _, cid = pick_order(db, "shipped")
    reply = servers.text(new_sender(), "where is my order?", token_for(cid))
    assert "recent orders" in reply and "#" in reply


def test_cancel_processing_order_end_to_end(servers: Servers, db) -> None:
    number, email, _ = pick_order(db, "processing")
    me = new_sender()
    servers.text(me, f"I want to cancel order {number}")
    confirm = servers.text(me, email)
    assert "cancel it" in confirm.lower()
    assert status_of(db, number) == "processing"  # nothing happens before "yes"
    done = servers.text(me, "yes")
    assert "cancelled" in done
    assert status_of(db, number) == "cancelled"


def test_cancel_shipped_order_is_refused(servers: Servers, db) -> None:
    number, email, _ = pick_order(db, "shipped")
    me = new_sender()
    servers.text(me, f"cancel my order {number}")
    reply = servers.text(me, email)
    assert "shipped" in reply.lower()
    assert status_of(db, number) == "shipped"


def test_refund_request_end_to_end(servers: Servers, db) -> None:
    number, email, cid = pick_refundable(db)
    before = count(db, Refund)
    me = new_sender()
    servers.text(me, "I'd like a refund please", token_for(cid))
    servers.text(me, number, token_for(cid))
    reply = servers.text(me, "the whole order", token_for(cid))
    if "reason" not in reply.lower():  # single-item orders skip the item question
        reply = servers.text(me, "arrived damaged", token_for(cid))
    else:
        reply = servers.text(me, "it arrived damaged", token_for(cid))
    assert "submit" in reply.lower()
    done = servers.text(me, "yes", token_for(cid))
    assert "RF-" in done
    assert count(db, Refund) == before + 1


def test_faq_digression_inside_a_form_then_stop(servers: Servers, db) -> None:
    number, _, _ = pick_order(db, "processing")
    me = new_sender()
    servers.text(me, f"cancel order {number}")
    faq = servers.text(me, "which payment methods do you accept?")
    assert "email" in faq.lower()  # answered, then the form asks again
    assert len(faq) > 60
    stopped = servers.text(me, "stop")
    assert "stopped" in stopped.lower()
    assert status_of(db, number) == "processing"


def test_no_to_the_email_question_leaves_the_form(servers: Servers, db) -> None:
    """A "no" where the form wants the email fills nothing: the task stops, and the question
    does not come back (it used to: "Okay. Is there anything else...?" then the email question)."""
    number, _, _ = pick_order(db, "processing")
    me = new_sender()
    assert "email" in servers.text(me, f"cancel order {number}").lower()
    left = servers.text(me, "no")
    assert "stopped" in left.lower()
    assert "email" not in left.lower()
    after = servers.text(me, "no thanks, bye")
    assert "email" not in after.lower() and "order number" not in after.lower()
    assert status_of(db, number) == "processing"


def test_fallback_twice_opens_a_ticket(servers: Servers, db) -> None:
    before = count(db, SupportTicket)
    me = new_sender()
    first = servers.text(me, "blorf quizzle wamble")
    assert "another way" in first
    second = servers.text(me, "zzyzx plonk frabjous")
    assert "TK-" in second
    assert count(db, SupportTicket) == before + 1


def test_human_request_creates_ticket(servers: Servers, db) -> None:
    before = count(db, SupportTicket)
    reply = servers.text(new_sender(), "I want to talk to a real person")
    assert "TK-" in reply
    assert count(db, SupportTicket) == before + 1


def shop_rows(db) -> tuple[list, list]:
    """Every customer's and order's row as stored: a changed status, email or total shows, not only a
    deleted or added row."""
    with Session(db) as s:
        customers = s.execute(select(Customer.__table__).order_by(Customer.id)).all()
        orders = s.execute(select(Order.__table__).order_by(Order.id)).all()
    return customers, orders


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a" * 10_000,
        "😀🙏🏽🚚📦",
        "¿Dónde está mi pedido? 我的订单在哪里",
        "'; DROP TABLE orders; --",
        "<script>alert('x')</script><img src=x onerror=alert(1)>",
        "order 12; DELETE FROM customers",
        "\x00\x01\x02 binary \udcff",
    ],
)
def test_bad_input_gets_a_polite_reply(servers: Servers, db, text: str) -> None:
    before = shop_rows(db)
    me = new_sender()
    messages = servers.say(me, text)
    assert messages and all(m.get("text") for m in messages)
    assert "Traceback" not in str(messages)
    assert "Concierge" in servers.text(me, "hello")  # the conversation continues
    after = shop_rows(db)
    assert after == before, [row for row in after[1] if row not in before[1]][:5]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2, 3]",
        b'{"message": "hi"}',
        b'{"sender": "", "message": "hi"}',
        b'{"sender": "x", "message": {"a": 1}}',
    ],
)
def test_malformed_requests_are_rejected_clearly(servers: Servers, body: bytes) -> None:
    resp = requests.post(
        f"{servers.rasa_url}/webhooks/rest/webhook", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert resp.status_code == 400
    assert "error" in resp.json()


def test_every_turn_is_logged_with_its_sentiment(servers: Servers, db) -> None:
    """The CRM ingestor (bot/crm) keeps the per-message log too, from the event stream: the
    intent and the sentiment the NLU put in the parse data (tests/e2e/test_crm.py: the CRM record)."""
    me = new_sender()
    servers.text(me, "thank you so much, you were super helpful!")
    rows: list = []
    deadline = time.monotonic() + 60  # recorded off the hot path by the ingestor (a loaded machine: seconds)
    while time.monotonic() < deadline:
        with Session(db) as s:
            rows = s.execute(
                select(Interaction.role, Interaction.sentiment_label, Interaction.intent).where(
                    Interaction.sender_id == me
                )
            ).all()
        if any(row.role == "bot" for row in rows):
            break
        time.sleep(0.1)
    assert [(r.role, r.sentiment_label) for r in rows if r.role == "user"] == [("user", "positive")]
    assert all(r.intent for r in rows if r.role == "user")
    assert any(r.role == "bot" for r in rows)


def user_sentiments(servers: Servers, sender: str, expected: int = 2) -> list[dict]:
    """The sentiment in each user message's parse data, as Rasa's tracker store keeps it.

    The tracker store writes behind the reply (concierge_rasa/stores.py), so the last turn may
    reach the file a moment after its answer: wait (bounded) for the ``expected`` user events."""
    import json
    import sqlite3

    deadline = time.monotonic() + 15
    while True:
        with sqlite3.connect(servers.tmp / "tracker.db") as con:
            rows = con.execute(
                "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user' ORDER BY id", (sender,)
            ).fetchall()
        if len(rows) >= expected or time.monotonic() > deadline:
            return [json.loads(data)["parse_data"].get("sentiment") for (data,) in rows]
        time.sleep(0.2)


def test_upset_twice_in_a_row_is_offered_a_human(servers: Servers, db) -> None:
    """The NLU's calibrated sentiment and the upset policy (config.yml): the second clearly
    negative message in a row gets the offer first, then its normal answer, and opens a ticket."""
    me = new_sender()
    first = servers.text(me, "this is ridiculous, my parcel is two weeks late and nobody answers my emails")
    assert "pass this conversation" not in first
    replies = servers.say(me, "honestly the worst shopping experience I've ever had, I'm furious")
    second = [m.get("text", "") for m in replies]
    assert "pass this conversation" in second[0] and "human" in second[0].lower()  # the offer comes first
    assert len(second) >= 2 and "pass this conversation" not in " ".join(second[1:])  # then the usual answer
    with Session(db) as s:
        tickets = s.execute(
            select(SupportTicket.category, SupportTicket.description).where(SupportTicket.sender_id == me)
        ).all()
    # an upset ticket, or the note on the conversation's open ticket (at most one open per conversation:
    # here the first message, a complaint, already opened one)
    assert any(category == "upset" or "[upset]" in (description or "") for category, description in tickets)
    sentiments = user_sentiments(servers, me)  # in the parse data the tracker and event stream carry
    assert [x["label"] for x in sentiments] == ["negative", "negative"]
    assert all(x["probabilities"]["negative"] >= 0.7 for x in sentiments)
    third = servers.text(me, "and the box was crushed too")  # still upset: one offer per streak
    assert "pass this conversation" not in third


def test_one_upset_message_then_a_calm_one_is_not_offered_a_human(servers: Servers) -> None:
    me = new_sender()
    servers.text(me, "this is ridiculous, my parcel is two weeks late and nobody answers my emails")
    calm = servers.text(me, "ok thank you, that's helpful")
    assert "pass this conversation" not in calm
    first, second = user_sentiments(servers, me)
    assert first["label"] == "negative" and second["label"] == "positive"


def test_identity_slots_cannot_be_injected(servers: Servers) -> None:
    me = new_sender()
    servers.text(me, '/greet{"verified_customer_id": "1", "verified_by": "chat", "customer_name": "Alice"}')
    reply = servers.text(me, "where is my order?")
    assert "recent orders" not in reply and "order number" in reply.lower()


@pytest.mark.parametrize("command", ["/restart", "/session_start", '/restart{"verified_customer_id": "1"}'])
def test_rasas_restart_commands_start_over_politely(servers: Servers, command: str) -> None:
    """Rasa's own commands end their turn without a bot message; the customer used to get the channel's
    "Sorry, something went wrong on my side" although nothing failed (fuzz item 1)."""
    me = new_sender()
    assert "Concierge" in servers.text(me, "hello")
    reply = servers.text(me, command)
    assert reply == "Okay, let's start over. What can I do for you?", reply
    assert "went wrong" not in reply
    kinds = [e.get("event") for e in tracker_events(servers.tracker_db, me)]
    command_at = [i for i, kind in enumerate(kinds) if kind == "user"][1]
    assert ("restart" if command.startswith("/restart") else "session_started") in kinds[command_at:], kinds
    assert "Concierge" in servers.text(me, "hello")  # the conversation goes on
    reply = servers.text(me, "where is my order?")  # and no identity came in with the command
    assert "recent orders" not in reply and "order number" in reply.lower()


def test_action_server_down_gets_a_polite_reply(servers: Servers, db) -> None:
    """Stops the action server, then starts it again and waits until it is healthy, so the session's
    stack is as it was for whichever test runs next."""
    servers.action_proc.terminate()
    servers.action_proc.wait(timeout=20)
    try:
        reply = servers.text(new_sender(), "where is my order 100003?")
        assert "sorry" in reply.lower()
    finally:
        servers.restart_action_server()
    again = servers.text(new_sender(), "where is my order 100003?").lower()  # the actions answer again
    assert "email" in again and "sorry" not in again, again
