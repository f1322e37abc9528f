"""CSAT and ticket rules end to end over REST: real Rasa server, action server, CRM ingestor, SQLite.

- After a request the bot resolved it asks once for a 1-5 rating (buttons) and a comment; the rating
  is stored in ``feedback`` with the conversation and the customer, and reaches the CRM's conversation.
- A customer who ignores the question and asks something else is served, and not asked again.
- After an escalation the bot pauses; handed back by the agent, it asks no CSAT.
- Junk never opens a ticket; a conversation has at most one open ticket.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.db.models import Conversation, Feedback, Order, SupportTicket
from bot.services import rasa_api
from bot.services.identity import sign_token
from bot.settings import load_settings
from tests.stack import SECRET, Servers, start_servers

pytestmark = pytest.mark.e2e
ALICE, BOB, CARLA = 1, 2, 3
RATING_QUESTION = "How would you rate this conversation"
API_TOKEN = "csat-e2e-rasa-api-token-0123456789abcdef"


@pytest.fixture(scope="module")
def servers_csat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    # Rasa's HTTP API on (token, localhost): the agent console's hand-back resumes a paused conversation
    yield from start_servers(tmp_path_factory.mktemp("csat"), extra_env={"RASA_API_TOKEN": API_TOKEN},
                             rasa_args=["--enable-api", "--auth-token", API_TOKEN])


def hand_back(srv: Servers, sender_id: str) -> None:
    """What the console's 'Hand back to the bot' does (bot/services/rasa_api.py): resume, no CSAT."""
    settings = dataclasses.replace(load_settings(), rasa_api_url=srv.rasa_url, rasa_api_token=API_TOKEN)
    rasa_api.resume(settings, sender_id, "You're back with the assistant.", csat=False)


@pytest.fixture(scope="module")
def db(servers_csat: Servers):
    engine = create_engine(servers_csat.db_url)
    yield engine
    engine.dispose()


def sender() -> str:
    return f"csat-{uuid.uuid4().hex[:12]}"


def token(customer_id: int) -> dict:
    return {"customer_token": sign_token(customer_id, ttl_s=3600, secret=SECRET)}


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


def tickets_of(db, conversation: str) -> list[tuple[str, str]]:
    with Session(db) as s:
        return [
            (t.number, t.status)
            for t in s.scalars(select(SupportTicket).where(SupportTicket.sender_id == conversation))
        ]


def test_resolved_request_asks_csat_once_and_stores_it(servers_csat: Servers, db) -> None:
    me, who = sender(), token(ALICE)
    servers_csat.say(me, "please cancel my order 190002", who)
    done = servers_csat.say(me, "yes, cancel it", who)
    assert "is cancelled" in texts(done)
    (question,) = [m for m in done if RATING_QUESTION in (m.get("text") or "")]
    assert [b["payload"] for b in question["buttons"]] == ["5", "4", "3", "2", "1", "/deny"]
    with Session(db) as s:
        assert s.scalar(select(Order.status).where(Order.number == "190002")) == "cancelled"

    comment_q = texts(servers_csat.say(me, "4", who))  # the button's payload
    assert "Anything you'd like to tell us" in comment_q
    thanks = texts(servers_csat.say(me, "quick and easy, thanks", who))
    assert "Thank you for your feedback" in thanks
    with Session(db) as s:
        rows = s.execute(
            select(Feedback.customer_id, Feedback.rating, Feedback.comment).where(Feedback.sender_id == me)
        ).all()
    assert rows == [(ALICE, 4, "quick and easy, thanks")]

    # once per conversation: the next resolved request is not followed by the question
    again = texts(servers_csat.say(me, "where is my order 190001?", who))
    assert "190001" in again and RATING_QUESTION not in again

    # the CRM ingestor puts it on the conversation too (off the hot path: poll briefly)
    deadline = time.monotonic() + 30
    record = None
    while time.monotonic() < deadline:
        with Session(db) as s:
            record = s.execute(
                select(Conversation.csat_rating, Conversation.csat_comment, Conversation.customer_id).where(
                    Conversation.sender_id == me
                )
            ).first()
        if record and record[0] is not None:
            break
        time.sleep(0.5)
    assert record is not None and tuple(record) == (4, "quick and easy, thanks", ALICE)


def test_customer_ignores_csat_and_carries_on(servers_csat: Servers, db) -> None:
    me, who = sender(), token(CARLA)
    first = texts(servers_csat.say(me, "where is my order 190010?", who))
    assert "190010" in first and RATING_QUESTION in first
    faq = texts(servers_csat.say(me, "how long does delivery usually take?", who))
    assert "deliver" in faq.lower() and "pick a number" not in faq
    later = texts(servers_csat.say(me, "can you send me the invoice for 190009?", who))
    assert "INV-190009" in later and RATING_QUESTION not in later  # asked once, never again
    with Session(db) as s:
        assert s.scalars(select(Feedback).where(Feedback.sender_id == me)).all() == []


def test_skip_stores_nothing(servers_csat: Servers, db) -> None:
    me, who = sender(), token(BOB)
    assert RATING_QUESTION in texts(servers_csat.say(me, "where is my refund for 190006?", who))
    reply = texts(servers_csat.say(me, "/deny", who))  # the Skip button
    assert "anything else" in reply.lower()
    with Session(db) as s:
        assert s.scalars(select(Feedback).where(Feedback.sender_id == me)).all() == []


def test_no_csat_after_an_escalation(servers_csat: Servers, db) -> None:
    me, who = sender(), token(ALICE)
    handoff = texts(servers_csat.say(me, "I want to talk to a real person", who))
    assert "TK-" in handoff
    assert servers_csat.say(me, "hello?", who) == []  # paused: a person answers now, not the bot
    hand_back(servers_csat, me)
    reply = texts(servers_csat.say(me, "where is my order 190001?", who))
    assert "190001" in reply and RATING_QUESTION not in reply


def test_junk_never_opens_a_ticket(servers_csat: Servers, db) -> None:
    me = sender()
    for text in ["", "a" * 20_000, "'; DROP TABLE orders; --", "<script>alert(1)</script>", "asdkjfh qwrtzp"]:
        reply = texts(servers_csat.say(me, text))
        assert reply and "Traceback" not in reply
        assert "reply here or by email" not in reply and "TK-" not in reply
    assert tickets_of(db, me) == []


def test_one_open_ticket_per_conversation(servers_csat: Servers, db) -> None:
    me = sender()
    first = texts(servers_csat.say(me, "this is ridiculous, my parcel arrived completely smashed"))
    assert "TK-" in first  # a complaint: a ticket, the bot carries on (not a gold customer)
    second = texts(servers_csat.say(me, "let me speak to someone from your staff"))
    ((number, status),) = tickets_of(db, me)
    assert status == "open" and number in first and number in second  # the handoff reuses the ticket
    hand_back(servers_csat, me)
    third = texts(servers_csat.say(me, "I want to talk to a human"))
    ((again, _),) = tickets_of(db, me)
    assert again == number and number in third
