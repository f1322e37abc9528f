import re

import pytest

from bot.db import models as m
from bot.services import tickets
from bot.services.errors import InvalidInput
from tests.bot.services.test_junk import GENUINE, JUNK


def test_create_ticket_numbers_increase(session):
    a = tickets.create_ticket(
        session, "conv-1", "complaint", "Broken lens", "It arrived cracked", customer_id=1
    )
    b = tickets.create_ticket(session, "conv-2", "human_agent", "Wants a person")
    assert re.fullmatch(r"TK-\d{6}", a.number)
    assert int(b.number[3:]) == int(a.number[3:]) + 1
    assert (a.category, a.status, a.priority) == ("complaint", "open", "normal")
    row = session.query(m.SupportTicket).filter_by(number=a.number).one()
    assert (row.customer_id, row.sender_id, row.description) == (1, "conv-1", "It arrived cracked")


def test_create_ticket_truncates_and_sanitises(session):
    info = tickets.create_ticket(
        session,
        "c" * 500,
        "x" * 500,
        "s\x00" * 1000,
        "<script>" * 10_000,
        customer_id=999_999,
        priority="mega",
    )
    row = session.query(m.SupportTicket).filter_by(number=info.number).one()
    assert len(row.subject) <= 200 and "\x00" not in row.subject
    assert len(row.description) <= 4000
    assert len(row.category) <= 60 and len(row.sender_id) <= 128
    assert row.customer_id is None  # unknown customer is not linked
    assert info.priority == "normal"


def test_a_conversation_has_at_most_one_open_ticket(session):
    first = tickets.create_ticket(
        session, "conv-once", "fallback", "Assistant could not understand", "customer: ???", trigger_texts=["eh"]
    )
    second = tickets.create_ticket(
        session,
        "conv-once",
        "handoff",
        "Customer asked for a human agent",
        "customer: a person please",
        customer_id=1,
        priority="high",
        trigger_texts=["a person please"],
    )
    assert not first.reused and second.reused
    assert second.number == first.number and second.priority == "high"
    rows = session.query(m.SupportTicket).filter_by(sender_id="conv-once").all()
    assert len(rows) == 1
    (row,) = rows
    assert row.priority == "high" and row.customer_id == 1  # raised, and linked once the customer is known
    assert row.description == "customer: ???\n\n[handoff] Customer asked for a human agent\ncustomer: a person please"
    # a lower priority never lowers it; a closed ticket no longer counts as open
    third = tickets.create_ticket(session, "conv-once", "complaint", "Late", priority="low")
    assert third.number == first.number and third.priority == "high"
    row.status = "closed"
    session.flush()
    fresh = tickets.create_ticket(session, "conv-once", "handoff", "Again")
    assert not fresh.reused and fresh.number != first.number
    other = tickets.create_ticket(session, "conv-other", "handoff", "Hi")
    assert other.number not in (first.number, fresh.number)


def test_reused_ticket_description_stays_bounded(session):
    info = tickets.create_ticket(session, "conv-long", "complaint", "x", "y" * 3990)
    for _ in range(5):
        tickets.create_ticket(session, "conv-long", "complaint", "again", "z" * 3000)
    row = session.query(m.SupportTicket).filter_by(number=info.number).one()
    assert len(row.description) <= tickets.MAX_DESCRIPTION


@pytest.mark.parametrize(("text", "reason"), JUNK)
def test_junk_never_opens_a_ticket(session, text, reason):
    before = session.query(m.SupportTicket).count()
    with pytest.raises(InvalidInput) as exc:
        tickets.create_ticket(session, "conv-junk", "fallback", "x", text, trigger_texts=["I need help", text])
    assert exc.value.code == "junk_message"
    with pytest.raises(InvalidInput):
        tickets.create_ticket(session, "conv-junk", "fallback", "x", trigger_texts=[])
    assert session.query(m.SupportTicket).count() == before


def test_real_messages_open_tickets(session):
    numbers = {
        tickets.create_ticket(session, f"conv-real-{i}", "complaint", text[:100], text, trigger_texts=[text]).number
        for i, text in enumerate(GENUINE)
    }
    assert len(numbers) == len(GENUINE)
