"""The conversation hub: rows an action writes link to conversations.id, now or once the ingestor has it."""

from __future__ import annotations

from datetime import timedelta

from bot.db import conversations, feedback, interactions, security, tickets
from bot.db.base import utcnow
from bot.db.models import Handoff


def test_a_row_written_before_its_conversation_is_linked_when_it_appears(session):
    ticket = tickets.create(session, sender_id="hub-1", category="complaint", subject="Late")
    rating = feedback.create(session, sender_id="hub-1", rating=2)
    binding = security.save_chat_verification(session, "hub-1", "sess", 1, utcnow())
    handoff = Handoff(ticket_id=ticket.id, sender_id="hub-1", reason="fallbacks")
    session.add(handoff)
    session.flush()
    assert (ticket.conversation_id, rating.conversation_id, binding.conversation_id) == (None, None, None)
    assert conversations.link_unlinked(session, "hub-1") == 0  # no conversation yet: nothing to link

    conv = conversations.start(session, "hub-1", utcnow() - timedelta(minutes=5))
    assert conversations.link_unlinked(session, "hub-1") == 4
    for row in (ticket, rating, binding, handoff):
        session.refresh(row)
        assert row.conversation_id == conv.id
    assert conversations.link_unlinked(session, "hub-1") == 0  # linked rows are left alone


def test_a_row_written_once_the_conversation_exists_is_linked_at_once(session):
    conv = conversations.start(session, "hub-2", utcnow() - timedelta(minutes=1))
    assert tickets.create(session, sender_id="hub-2", category="x", subject="y").conversation_id == conv.id
    assert feedback.create(session, sender_id="hub-2", rating=5).conversation_id == conv.id
    assert security.save_chat_verification(session, "hub-2", "s", 1, utcnow()).conversation_id == conv.id
    other = tickets.create(session, sender_id="hub-other", category="x", subject="y")
    assert other.conversation_id is None  # another sender's conversation is not this one's


def test_each_row_goes_to_the_conversation_running_when_it_was_written(session):
    now = utcnow()
    first = conversations.start(session, "hub-3", now - timedelta(hours=2))
    second = conversations.start(session, "hub-3", now - timedelta(hours=1))
    early = interactions.log(session, sender_id="hub-3", role="user", text="hi")
    late = interactions.log(session, sender_id="hub-3", role="user", text="again")
    before_any = interactions.log(session, sender_id="hub-3", role="user", text="older")
    early.created_at, late.created_at = now - timedelta(minutes=90), now - timedelta(minutes=30)
    before_any.created_at = now - timedelta(hours=3)
    session.flush()
    assert conversations.link_unlinked(session, "hub-3") == 3
    for row in (early, late, before_any):
        session.refresh(row)
    # the latest conversation started before the row; a row older than all goes to the first
    assert (early.conversation_id, late.conversation_id, before_any.conversation_id) == (first.id, second.id, first.id)
