"""The CRM ingestor fills the hub's link of rows an action wrote before it saw the conversation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.ingestor import Ingestor
from bot.crm.sources import SQLEventSource
from bot.db import tickets
from bot.db.models import Conversation, Interaction, SupportTicket
from bot.db.session import get_engine
from tests.bot.crm.conftest import BrokerFile, rasa_events


@pytest.fixture
def crm_sqlite(tmp_path: Path, identity_secret: str) -> str:
    from bot.seed import seed

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    seed(url, progress=None, seed=3, customers=12, products=40, orders=40)
    return url


def test_a_ticket_written_before_the_conversation_is_linked_by_the_ingestor(crm_sqlite: str, tmp_path: Path) -> None:
    events = [e for e in rasa_events() if e["sender_id"] == "cap-verified"]
    assert any(e["event"] == "action" for e in events)
    with Session(get_engine(crm_sqlite)) as s, s.begin():  # the action ran before the ingestor saw anything
        ticket_id = tickets.create(s, sender_id="cap-verified", category="complaint", subject="Late").id
    with Session(get_engine(crm_sqlite)) as s:
        assert s.get(SupportTicket, ticket_id).conversation_id is None
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(events)
    ingestor = Ingestor(SQLEventSource(broker.path, db_url=crm_sqlite), db_url=crm_sqlite, idle_close_s=3600,
                        batch_size=50)
    ingestor.run(threading.Event(), once=True)
    with Session(get_engine(crm_sqlite)) as s:
        (conv_id,) = s.scalars(select(Conversation.id).where(Conversation.sender_id == "cap-verified")).all()
        assert s.get(SupportTicket, ticket_id).conversation_id == conv_id
        logged = s.scalars(select(Interaction.conversation_id).where(Interaction.sender_id == "cap-verified")).all()
        assert logged and set(logged) == {conv_id}  # the ingestor's own log rows link as it writes them


def test_a_row_an_action_wrote_in_a_later_session_of_the_batch_goes_to_that_session(
    crm_sqlite: str, tmp_path: Path
) -> None:
    """Issue 24: rows are linked once per sender and batch, after the batch's events. A batch holding
    two sessions of one customer: the ticket written during the second session's action belongs to the
    second conversation (linked at the first session's actions, as per event, it went to the first)."""
    from datetime import datetime, timezone

    first = [e for e in rasa_events() if e["sender_id"] == "cap-verified"]
    second = [{**e, "timestamp": e["timestamp"] + 1000} for e in first]
    action_at = next(e["timestamp"] for e in second if e.get("name") == "action_track_order")
    with Session(get_engine(crm_sqlite)) as s, s.begin():
        ticket = tickets.create(s, sender_id="cap-verified", category="complaint", subject="Late")
        ticket.created_at = datetime.fromtimestamp(action_at, timezone.utc).replace(tzinfo=None)
        ticket_id = ticket.id
    broker = BrokerFile(tmp_path / "events.db")
    broker.publish(first + second)
    ingestor = Ingestor(SQLEventSource(broker.path, db_url=crm_sqlite), db_url=crm_sqlite, idle_close_s=3600,
                        batch_size=200)
    ingestor.run(threading.Event(), once=True)
    assert ingestor.stats.events == len(first) + len(second)
    with Session(get_engine(crm_sqlite)) as s:
        convs = s.scalars(select(Conversation.id).where(Conversation.sender_id == "cap-verified")
                          .order_by(Conversation.started_at)).all()
        assert len(convs) == 2
        assert s.get(SupportTicket, ticket_id).conversation_id == convs[1]
