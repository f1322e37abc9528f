import re

from bot.db import models as m
from bot.services import tickets


def test_create_ticket_numbers_increase(session):
    a = tickets.create_ticket(
        session, "conv-1", "complaint", "Broken lens", "It arrived cracked", customer_id=1
    )
    b = tickets.create_ticket(session, "conv-1", "human_agent", "Wants a person")
    assert re.fullmatch(r"TK-\d{6}", a.number)
    assert int(b.number[3:]) == int(a.number[3:]) + 1
    assert (a.category, a.status, a.priority) == ("complaint", "open", "normal")
    row = session.query(m.SupportTicket).filter_by(number=a.number).one()
    assert (row.customer_id, row.conversation_id, row.description) == (1, "conv-1", "It arrived cracked")


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
    assert len(row.category) <= 60 and len(row.conversation_id) <= 128
    assert row.customer_id is None  # unknown customer is not linked
    assert info.priority == "normal"
