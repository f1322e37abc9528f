"""Human handoff end to end, with real processes: Rasa (HTTP API with a token, on localhost), the
action server, the CRM ingestor and the web app's agent console.

A customer on socket.io asks for a person; the bot pauses; an agent logs in over HTTP, claims the
ticket and replies; the customer receives it on socket.io, marked with the agent's name; the
customer answers and the agent's SSE stream shows it; the agent resolves; the bot resumes and asks
for CSAT; the CRM holds the whole story. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.db import models as m
from bot.web.users import DEMO_USERS
from tests.e2e.console_stack import RASA_API_TOKEN, AgentClient, ConsoleStack, Widget, start_console_stack

pytestmark = pytest.mark.e2e
AGENT_USER, AGENT_NAME, AGENT_PASSWORD, _ = DEMO_USERS[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    yield from start_console_stack(tmp_path_factory.mktemp("handoff"))


def wait_db(db_url: str, query, check, timeout: float = 20.0):  # noqa: ANN001, ANN201
    """Polls the CRM until ``check(rows)`` holds (the ingestor runs off the hot path)."""
    engine = create_engine(db_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with Session(engine) as s:
                rows = s.execute(query).all()
            if check(rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()


CSAT_BUTTONS = ["5", "4", "3", "2", "1", "/deny"]  # actions/csat.py: the rating buttons and Skip


def widget_of(stack: ConsoleStack) -> Widget:
    return Widget(stack.servers.rasa_url, stack.servers.tracker_db)


async def test_customer_agent_and_bot_hand_the_conversation_around(stack: ConsoleStack) -> None:
    widget = await widget_of(stack).open()
    agent = AgentClient(stack.web_url)
    try:
        await widget.send("hi")
        await widget.texts()
        await widget.send("I want to talk to a human")
        handover = "\n".join(await widget.texts())
        assert "passed this conversation to our support team" in handover, handover
        ticket = handover.split("(ticket ", 1)[1][:9]

        # paused: the bot says nothing (Rasa logged the message and ran nothing), but it reaches the CRM
        await widget.send("hello? is anyone there")
        assert await widget.replies() == []

        assert (await asyncio.to_thread(agent.login, AGENT_USER, AGENT_PASSWORD)).status_code == 303
        handoff_id = await asyncio.to_thread(agent.find_handoff, ticket)
        deadline = time.monotonic() + 60  # the paused message reaches the agent's view (the CRM, off the hot path;
        while "hello? is anyone there" not in await asyncio.to_thread(agent.page, handoff_id):  # a cold ingestor)
            assert time.monotonic() < deadline, "the customer's message sent while paused never reached the console"
            await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(agent.post, handoff_id, "claim")).status_code == 204
        await asyncio.to_thread(agent.open_stream, handoff_id)  # as the page does: what arrives from now on

        reply = "Hi, I'm looking at your order now <b>really</b>"
        assert (await asyncio.to_thread(agent.post, handoff_id, "reply", text=reply)).status_code == 204
        # the post returns once Rasa sent it: the widget has it, and only it, marked as from a person
        assert [m.get("text") for m in await widget.flush()] == [f"{AGENT_NAME} (support): {reply}"]

        await widget.send("thank you, it is order 190001")
        _, turn = await asyncio.to_thread(agent.wait_turn, lambda t: t["role"] == "user" and "thank you" in t["text"])
        assert "190001" in turn["text"]
        assert await widget.replies() == []  # still paused: only the agent answers

        assert (await asyncio.to_thread(agent.post, handoff_id, "resolve")).status_code == 204
        closing = await widget.flush()  # the post returns once Rasa sent the closing turn
        assert len(closing) == 2, closing
        assert "marked this conversation as resolved" in closing[0]["text"] and AGENT_NAME in closing[0]["text"]
        # the CSAT question: the 1-5 scale and its buttons (the payloads the form reads), then Skip
        assert "from 1 (poor) to 5 (excellent)" in closing[1]["text"], closing
        assert [b["payload"] for b in closing[1].get("quick_replies", [])] == CSAT_BUTTONS, closing
        # the button's payload as rasa-webchat sends it ("5"): the first answer is taken, the comment follows
        tracker = requests.get(f"{stack.servers.rasa_url}/conversations/{widget.session_id}/tracker",
                               params={"token": RASA_API_TOKEN}, timeout=10).json()
        assert tracker["latest_action_name"] == "action_listen"  # the bot waits for the answer
        assert tracker["active_loop"]["name"] == "csat_form" and tracker["slots"]["requested_slot"] == "csat_rating"
        await widget.send("5")
        after_rating = "\n".join(await widget.texts())
        assert "Anything you'd like to tell us" in after_rating, after_rating
        assert "went wrong" not in after_rating
        await widget.send("quick and friendly")
        thanks = "\n".join(await widget.texts())
        assert "Thank you for your feedback" in thanks, thanks
    finally:
        agent.close()
        await widget.close()

    sender = widget.session_id
    db = stack.servers.db_url
    turns = wait_db(
        db,
        select(m.Turn.role, m.Turn.event, m.Turn.text).join(m.Conversation)
        .where(m.Conversation.sender_id == sender).order_by(m.Turn.id),
        lambda rows: any(r.event == "resume" for r in rows) and any(r.text == "5" for r in rows),
    )
    texts = [(r.role, r.text) for r in turns if r.role in ("user", "bot")]
    events = [r.event for r in turns]
    assert ("user", "hello? is anyone there") in texts
    # the agent's turn (the CRM redacts person names in what it keeps, the agent's too)
    assert any(r == "bot" and t.endswith(f" (support): {reply}") for r, t in texts)
    assert any(r == "user" and "thank you" in t for r, t in texts)
    assert events.index("pause") < events.index("resume")
    conv = wait_db(db, select(m.Conversation.escalated, m.Conversation.csat_rating, m.Conversation.csat_comment)
                   .where(m.Conversation.sender_id == sender), lambda rows: rows and rows[0].csat_comment)
    assert conv[0].escalated and conv[0].csat_rating == 5 and conv[0].csat_comment == "quick and friendly"
    engine = create_engine(db)
    with Session(engine) as s:
        h = s.get(m.Handoff, handoff_id)
        assert h.status == "resolved" and h.reason == "asked_for_person"
        assert h.created_at <= h.assigned_at <= h.first_response_at <= h.resolved_at
        summary = h.summary  # what the agent reads first: all of it from this conversation
        assert (summary["reason"], summary["wanted"], summary["intents"], summary["last_message"]) == (
            "asked_for_person", "contact_human_agent", ["contact_human_agent"], "I want to talk to a human"), summary
        notes = [(n.kind, n.text) for n in s.scalars(select(m.HandoffNote).where(m.HandoffNote.handoff_id == h.id))]
        assert ("reply", reply) in notes
        audit = [a.action for a in s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))]
        # what the agent did, in order (opening the live view is audited too, as view_live*)
        assert [a for a in audit if not a.startswith("view_")][-4:] == ["login", "claim", "reply", "resolve"], audit
        ticket_row = s.scalars(select(m.SupportTicket).where(m.SupportTicket.number == ticket)).one()
        assert ticket_row.status == "closed"
    engine.dispose()


async def test_hand_back_resumes_the_bot_without_csat(stack: ConsoleStack) -> None:
    widget = await widget_of(stack).open()
    agent = AgentClient(stack.web_url)
    try:
        await widget.send("connect me to an agent")
        handover = "\n".join(await widget.texts())
        ticket = handover.split("(ticket ", 1)[1][:9]
        assert (await asyncio.to_thread(agent.login, AGENT_USER, AGENT_PASSWORD)).status_code == 303
        handoff_id = await asyncio.to_thread(agent.find_handoff, ticket)
        assert (await asyncio.to_thread(agent.post, handoff_id, "handback")).status_code == 204
        back = [m.get("text", "") for m in await widget.flush()]  # the post returns once Rasa sent it
        assert len(back) == 1 and "handed you back to me" in back[0], back  # and no CSAT question
        await widget.send("where is my order?")
        answer = "\n".join(await widget.texts())
        assert "order" in answer.lower()  # the bot answers again
    finally:
        agent.close()
        await widget.close()


def test_customers_cannot_reach_rasas_http_api_or_the_console(stack: ConsoleStack) -> None:
    rasa = stack.servers.rasa_url
    event = [{"event": "bot", "text": "fake agent message"}]
    for params in ({}, {"token": "guess"}, {"token": RASA_API_TOKEN[:-1]}):
        resp = requests.post(f"{rasa}/conversations/anyone/tracker/events", json=event, params=params, timeout=10)
        assert resp.status_code in (401, 403), params
        assert requests.get(f"{rasa}/conversations/anyone/tracker", params=params, timeout=10).status_code in (
            401, 403)
    assert requests.get(f"{rasa}/conversations/anyone/tracker", params={"token": RASA_API_TOKEN},
                        timeout=10).status_code == 200  # the API is on, for the console only
    assert requests.get(f"{stack.web_url}/console/h/1", headers={"Accept": "application/json"},
                        timeout=10).status_code == 401
