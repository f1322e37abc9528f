"""The CRM record end to end: real Rasa server (SQLite tracker store, SQL event broker), real
action server and the CRM ingestor process; conversations over REST become conversation and
turn rows with intents, sentiment, outcome and the verified customer; a Rasa restart keeps a
conversation."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from bot.db.models import Conversation, Turn
from bot.services.identity import sign_token
from tests.stack import ROOT, SECRET, Servers, start_servers, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    # conversations idle for 25 s are closed (longer than a turn on a busy machine), so their
    # outcome is decided within the test
    yield from start_servers(tmp_path_factory.mktemp("crm"), extra_env={"CONCIERGE_CRM_IDLE_CLOSE_S": "25"})


@pytest.fixture(scope="module")
def db(stack: Servers):
    engine = create_engine(stack.db_url)
    yield engine
    engine.dispose()


def new_sender() -> str:
    return f"crm-{uuid.uuid4().hex[:10]}"


def record(db, sender: str, *, closed: bool = False, timeout: float = 120) -> tuple[Conversation, list[Turn]]:
    """The sender's conversation and turns once the ingestor has stored them (and closed it)."""
    deadline = time.monotonic() + timeout
    conv, turns = None, []
    while time.monotonic() < deadline:
        with Session(db) as s:
            conv = s.scalars(select(Conversation).where(Conversation.sender_id == sender)).first()
            if conv is not None:
                turns = list(s.scalars(select(Turn).where(Turn.conversation_id == conv.id).order_by(Turn.id)))
        if conv is not None and (conv.ended_at is not None or not closed):
            return conv, turns
        time.sleep(0.3)
    pytest.fail(f"no {'closed ' if closed else ''}CRM conversation for {sender} (got {conv})")


def published_user_events(stack: Servers, sender: str) -> list[dict]:
    with sqlite3.connect(stack.events_db) as conn:
        rows = conn.execute("SELECT data FROM events WHERE sender_id = ? ORDER BY id", (sender,)).fetchall()
    return [e for e in (json.loads(r[0]) for r in rows) if e["event"] == "user"]


def test_a_verified_conversation_is_recorded_completely(stack: Servers, db) -> None:
    me = new_sender()
    stack.text(me, "hi, where is my order 190001?")
    assert "#190001" in stack.text(me, "alice.martin@example.com")
    stack.text(me, "thanks, bye")
    conv, turns = record(db, me, closed=True)
    assert (conv.channel, conv.customer_id, conv.turn_count, conv.outcome) == ("rest", 1, 3, "resolved")
    users = [t for t in turns if t.role == "user"]
    assert [t.intent for t in users] == ["track_order", "inform", "goodbye"]
    assert all(t.confidence and 0 < t.confidence <= 1 for t in users)
    assert users[1].text == "[EMAIL]" and users[1].raw_text is None
    assert "alice.martin" not in " ".join(t.text for t in turns)
    assert users[0].entities[0]["value"] == "190001"
    assert users[1].entities[0]["value"] == "[EMAIL]"  # entity values are redacted too
    # no column the ingestor wrote for this conversation holds the email (turns, interactions, conversation)
    with db.connect() as c:
        rows = [
            *c.execute(text("SELECT * FROM turns WHERE conversation_id = :i"), {"i": conv.id}).mappings(),
            *c.execute(text("SELECT * FROM interactions WHERE sender_id = :s"), {"s": me}).mappings(),
            *c.execute(text("SELECT * FROM conversations WHERE sender_id = :s"), {"s": me}).mappings(),
        ]
    assert len(rows) > 10 and [(k, v) for r in rows for k, v in r.items() if "alice.martin" in str(v)] == []
    # the turns before the verification belong to the customer too
    assert all(t.customer_id == 1 for t in turns)
    assert any(t.role == "action" and t.action_name == "action_track_order" for t in turns)
    bots = [t for t in turns if t.role == "bot"]
    assert any("#190001" in t.text and t.action_name == "action_track_order" for t in bots)
    # sentiment as the NLU put it in the parse data (label and the probability of that label)
    for turn, event in zip(users, published_user_events(stack, me), strict=True):
        sentiment = event["parse_data"].get("sentiment") or {}
        assert turn.sentiment_label == sentiment.get("label")
        if sentiment.get("probabilities"):
            assert turn.sentiment_probability == pytest.approx(sentiment["probabilities"][sentiment["label"]])


def test_outcomes_escalated_and_fallback(stack: Servers, db) -> None:
    human, lost = new_sender(), new_sender()
    assert "TK-" in stack.text(human, "I want to talk to a person")
    stack.text(lost, "blorf zzzq wibble")
    conv_h, _ = record(db, human, closed=True)
    conv_l, turns_l = record(db, lost, closed=True)
    assert conv_h.outcome == "escalated"
    assert conv_l.outcome == "fallback" and turns_l[2].intent == "nlu_fallback"


def test_the_website_token_identifies_the_customer(stack: Servers, db) -> None:
    me = new_sender()
    token = sign_token(2, ttl_s=600, secret=SECRET)
    assert "190005" in stack.text(me, "show me my recent orders", {"customer_token": token})
    conv, turns = record(db, me)
    deadline = time.monotonic() + 30
    while conv.customer_id is None and time.monotonic() < deadline:
        time.sleep(0.3)
        conv, turns = record(db, me)
    assert conv.customer_id == 2 and all(t.customer_id == 2 for t in turns)
    with sqlite3.connect(stack.events_db) as conn:  # the token itself is never published
        assert conn.execute("SELECT count(*) FROM events WHERE data LIKE ?", (f"%{token}%",)).fetchone()[0] == 0


def test_a_rasa_restart_keeps_the_conversation(stack: Servers, db) -> None:
    """Runs last: the tracker is in SQLite, so the form goes on after the Rasa server restarts."""
    me = new_sender()
    assert "email" in stack.text(me, "where is my order 190001?").lower()
    stack.rasa_proc.terminate()
    stack.rasa_proc.wait(timeout=30)
    log = stack.tmp / "rasa-restarted.log"
    stack.rasa_proc = subprocess.Popen(
        stack.rasa_cmd, cwd=ROOT, env=stack.env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    wait_for(f"{stack.rasa_url}/webhooks/rest/", stack.rasa_proc, log, 600)
    reply = stack.text(me, "alice.martin@example.com")
    assert "#190001" in reply  # the form remembered the order number asked before the restart
    conv, turns = record(db, me)
    deadline = time.monotonic() + 30
    while sum(t.role == "user" for t in turns) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        conv, turns = record(db, me)
    assert [t.intent for t in turns if t.role == "user"] == ["track_order", "inform"]
    assert conv.customer_id == 1
