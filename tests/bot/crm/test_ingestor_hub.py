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
