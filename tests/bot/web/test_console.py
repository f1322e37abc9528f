"""The agent console's pages and actions through real HTTP handling (TestClient) on a seeded database.

A failed reply says why (Rasa unreachable: 502 with a message the page shows, nothing recorded);
htmx runs without eval (the CSP has no 'unsafe-eval'); the widget's "/greet" and button payloads
are described, not shown as the customer's words, in the console and the dashboard; the "Why a
person" panel reads the sentiment of the CRM turns; only supervisors get the dashboard link.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.db import models as m
from bot.db.session import session_scope
from bot.services import handoff as handoff_service
from bot.services import tickets as ticket_service
from bot.web.users import DEMO_USERS, ensure_demo_users
from tests.bot.web.conftest import csrf_of

AGENT = DEMO_USERS[0]
SUPERVISOR = DEMO_USERS[1]
SENDER = "sender-console"


@pytest.fixture
def seeded(fresh_db_url: str) -> tuple[int, int]:
    return seed_console()


def seed_console() -> tuple[int, int]:
    """Demo users and one escalated conversation: the widget's /greet, two customer messages with
    sentiment (neutral, then negative), a /deny button; returns (handoff id, CRM conversation id)."""
    with session_scope() as s:
        ensure_demo_users(s)
        customer = s.scalars(select(m.Customer).order_by(m.Customer.id)).first()
        ticket = ticket_service.create_ticket(s, SENDER, "handoff", "Customer asked for a human agent",
                                              "I want to talk to a human", customer.id, "high")
        info = handoff_service.escalate(s, handoff_service.EscalationContext(
            sender_id=SENDER, ticket_number=ticket.number, reason="asked_for_person", channel="socketio",
            customer_id=customer.id, transcript=[("user", "I want to talk to a human")],
            intents=["contact_human_agent"], sentiments=[("neutral", 0.1)]))
        now = datetime.utcnow()
        conv = m.Conversation(sender_id=SENDER, channel="socketio", started_at=now, last_event_at=now)
        s.add(conv)
        s.flush()
        rows = [("user", "/greet", None), ("bot", "Hi! I'm Concierge", None),
                ("user", "I want to talk to a human", "neutral"),
                ("user", "this is the third time my parcel is late, awful", "negative"),
                ("user", "/deny", None)]
        for i, (role, text, label) in enumerate(rows):
            s.add(m.Turn(conversation_id=conv.id, role=role, event=role, text=text, sentiment_label=label,
                         event_at=now + timedelta(seconds=i), event_key=f"console-turn-{i}"))
        return info.handoff_id, conv.id


def log_in(client: TestClient, user: tuple[str, str, str, str]) -> None:
    page = client.get("/console/login")
    resp = client.post("/console/login", data={"username": user[0], "password": user[2],
                                                "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert resp.status_code == 303


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free again once closed: nothing listens there


def test_a_reply_rasa_refuses_says_so_and_is_not_recorded(make_client: Callable[..., TestClient],
                                                          fresh_db_url: str, seeded: tuple[int, int]) -> None:
    handoff_id, _ = seeded
    client = make_client(fresh_db_url, rasa_api_url=f"http://127.0.0.1:{closed_port()}",
                         rasa_api_token="console-test-token-0123456789abcdef")
    log_in(client, AGENT)
    page = client.get(f"/console/h/{handoff_id}").text
    csrf = csrf_of(page)
    assert client.post(f"/console/h/{handoff_id}/claim", data={"csrf": csrf},
                       follow_redirects=False).status_code == 303
    resp = client.post(f"/console/h/{handoff_id}/reply", data={"csrf": csrf, "text": "On it!"},
                       headers={"HX-Request": "true"})
    assert resp.status_code == 502
    assert "the customer hasn't received it" in resp.json()["detail"]  # what console.js shows
    resolve = client.post(f"/console/h/{handoff_id}/resolve", data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert resolve.status_code == 502 and "hasn't received it" in resolve.json()["detail"]
    with session_scope() as s:
        notes = s.scalars(select(m.HandoffNote.kind).where(m.HandoffNote.handoff_id == handoff_id)).all()
        assert "reply" not in notes
        assert s.get(m.Handoff, handoff_id).status == "assigned"  # the failed resolve reopened it
    page = client.get(f"/console/h/{handoff_id}").text
    assert 'id="console-error"' in page and 'role="alert"' in page  # where the error appears
    assert 'hx-post="/console/h/' in page.split('id="resolve"')[0].rsplit("<form", 1)[1]  # resolve via htmx too


def test_htmx_runs_without_eval(make_client: Callable[..., TestClient], fresh_db_url: str,
                                seeded: tuple[int, int]) -> None:
    client = make_client(fresh_db_url)
    log_in(client, AGENT)
    page = client.get(f"/console/h/{seeded[0]}")
    assert "'unsafe-eval'" not in page.headers["Content-Security-Policy"]
    meta = page.text.split('<meta name="htmx-config" content=\'', 1)[1].split("'", 1)[0]
    assert json.loads(meta)["allowEval"] is False
    for attr in ("hx-on", "hx-vals", "hx-vars", "js:", "["):  # nothing on the page asks htmx to evaluate
        assert all(attr not in tag for tag in page.text.split("<") if "hx-" in tag), attr


def test_widget_payloads_are_not_shown_as_customer_text(make_client: Callable[..., TestClient],
                                                        fresh_db_url: str, seeded: tuple[int, int]) -> None:
    handoff_id, conversation_id = seeded
    client = make_client(fresh_db_url)
    log_in(client, SUPERVISOR)
    page = client.get(f"/console/h/{handoff_id}").text
    transcript = page.split('id="transcript"', 1)[1].split("</ol>", 1)[0]
    assert "/greet" not in transcript and "/deny" not in transcript
    assert "<i>opened the chat</i>" in transcript and "<i>clicked a button: no / skip</i>" in transcript
    assert "I want to talk to a human" in transcript
    with client.stream("GET", f"/console/h/{handoff_id}/stream") as stream:
        turns = []
        for line in stream.iter_lines():
            if line.startswith('data: {"id"'):
                turns.append(json.loads(line[6:]))
            if len(turns) == 5:
                break
    assert turns[0]["text"] == "opened the chat" and turns[0]["payload"] is True
    assert turns[2]["text"] == "I want to talk to a human" and turns[2]["payload"] is False
    dashboard = client.get(f"/console/dashboard/conversations/{conversation_id}")
    assert dashboard.status_code == 200
    assert "/greet" not in dashboard.text and "opened the chat" in dashboard.text
    assert "I want to talk to a human" in dashboard.text


def test_why_a_person_reads_the_turns_sentiment(make_client: Callable[..., TestClient], fresh_db_url: str,
                                                seeded: tuple[int, int]) -> None:
    client = make_client(fresh_db_url)
    log_in(client, AGENT)
    page = client.get(f"/console/h/{seeded[0]}").text
    mood = page.split('id="mood"', 1)[1].split(">", 1)[1].split("</dd>", 1)[0]
    # the payloads have no sentiment and don't count; neutral then negative
    assert mood == "negative now, worsening (1/2 messages negative)"


def test_one_message_shows_its_label() -> None:
    at = datetime.utcnow()
    turns = [handoff_service.TurnView(1, "user", "opened the chat", at, payload=True),
             handoff_service.TurnView(2, "user", "I want a human", at, sentiment="neutral")]
    mood = handoff_service.live_sentiment(turns)
    assert mood == {"first": "neutral", "latest": "neutral", "trend": "unknown", "negative_messages": 0, "messages": 1}
    assert handoff_service.live_sentiment([])["messages"] == 0


def test_payload_description() -> None:
    describe = handoff_service.payload_description
    assert describe("user", "/greet") == "opened the chat"
    assert describe("user", ' /choose_order{"order_number": "190001"}') == "clicked a button: choose order"
    for role, text in (("user", "5"), ("user", "/ not a payload"), ("user", "a/b"), ("bot", "/greet"),
                       ("user", ""), ("user", None)):
        assert describe(role, text) is None, (role, text)


def test_only_supervisors_see_the_dashboard_link(make_client: Callable[..., TestClient], fresh_db_url: str,
                                                 seeded: tuple[int, int]) -> None:
    agent = make_client(fresh_db_url)
    log_in(agent, AGENT)
    for path in ("/console", f"/console/h/{seeded[0]}"):
        assert 'id="nav-dashboard"' not in agent.get(path).text, path
    supervisor = make_client(fresh_db_url)
    log_in(supervisor, SUPERVISOR)
    for path in ("/console", f"/console/h/{seeded[0]}", "/console/team"):
        page = supervisor.get(path).text
        assert '<a href="/console/dashboard" id="nav-dashboard">Dashboard</a>' in page, path
    assert supervisor.get("/console/dashboard").status_code == 200
