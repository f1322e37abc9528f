"""The agent console's pages and actions through real HTTP handling (TestClient) on a seeded database.

The agent handling a conversation reads it as it was written, from a real Rasa tracker (the live
view); another agent reads the CRM's redacted copy and is refused the live stream (403); both are in
the audit log, and an unreachable Rasa falls back to the redacted copy under a banner.
A failed reply says why (Rasa unreachable: 502 with a message the page shows, nothing recorded);
htmx runs without eval (the CSP has no 'unsafe-eval'); the widget's "/greet" and button payloads
are described, not shown as the customer's words, in the console and the dashboard; the "Why a
person" panel reads the sentiment of the CRM turns; only supervisors get the dashboard link.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.db import models as m
from bot.db.session import session_scope
from bot.services import handoff as handoff_service
from bot.services import tickets as ticket_service
from bot.web import console
from bot.web.auth import create_agent
from bot.web.users import DEMO_USERS, ensure_demo_users
from tests.bot.web.conftest import csrf_of
from tests.stack import Servers, start_servers

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


# ---------------------------------------------------------------- what agents read (a real Rasa tracker)
RASA_API_TOKEN = "console-live-rasa-api-token-0123456789"
LIVE_SENDER = "live-view-customer"
ADDRESS = "please send it to 12 Baker Street, Austin instead"
OTHER_AGENT = ("jo", "Jo", "concierge-other-agent-demo", "agent")
ZH_SENDER = "live-view-chinese-customer"


@pytest.fixture(scope="module")
def rasa_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Real Rasa (HTTP API with a token), action server and CRM ingestor on a seeded SQLite database, with
    a customer who asked for a person and then typed a new address while the bot was paused."""
    for servers in start_servers(tmp_path_factory.mktemp("console-live"),
                                 rasa_args=["--enable-api", "--auth-token", RASA_API_TOKEN]):
        with session_scope(servers.db_url) as s:
            ensure_demo_users(s)
            create_agent(s, *OTHER_AGENT)
        servers.say(LIVE_SENDER, "hi")
        servers.say(LIVE_SENDER, "I want to talk to a human")
        servers.say(LIVE_SENDER, ADDRESS)
        servers.say(ZH_SENDER, "你好")
        servers.say(ZH_SENDER, "帮我转人工客服")
        yield servers


def wait_until(check: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    """Polls ``check`` until it returns something truthy (the ingestor writes the CRM off the hot path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what} never happened within {timeout} s")


def live_handoff(db_url: str) -> int:
    """The handoff of LIVE_SENDER, once the CRM holds the address message (redacted)."""
    def ready() -> int | None:
        with session_scope(db_url) as s:
            hid = s.scalar(select(m.Handoff.id).where(m.Handoff.sender_id == LIVE_SENDER))
            texts = [t.text for t in handoff_service.turns(s, LIVE_SENDER)]
        return hid if hid and any("instead" in t for t in texts) else None

    return wait_until(ready, "the handoff and the CRM's copy of the address message")


def audit_rows(db_url: str, username: str) -> list[tuple[str, str, str]]:
    with session_scope(db_url) as s:
        agent_id = s.scalar(select(m.Agent.id).where(m.Agent.username == username))
        return [tuple(r) for r in s.execute(select(m.AuditEntry.action, m.AuditEntry.target, m.AuditEntry.detail)
                                            .where(m.AuditEntry.agent_id == agent_id).order_by(m.AuditEntry.id))]


def stream_turns(client: TestClient, url: str, until: Callable[[dict], bool]) -> list[dict]:
    """The stream's turns up to the first one ``until`` accepts (the server ends a stream after its limit)."""
    turns: list[dict] = []
    with client.stream("GET", url) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith('data: {"id"'):
                turns.append(json.loads(line[6:]))
                if until(turns[-1]):
                    return turns
    raise AssertionError(f"the stream ended without the expected turn: {turns}")


@pytest.mark.e2e
def test_the_handling_agent_reads_the_real_conversation_others_the_redacted_one(
        make_client: Callable[..., TestClient], rasa_stack: Servers) -> None:
    db_url = rasa_stack.db_url
    handoff_id = live_handoff(db_url)
    with session_scope(db_url) as s:
        crm_text = next(t.text for t in handoff_service.turns(s, LIVE_SENDER) if "instead" in t.text)
    assert "Baker Street" not in crm_text and "[ADDRESS]" in crm_text  # the CRM's copy is redacted

    api = {"rasa_api_url": rasa_stack.rasa_url, "rasa_api_token": RASA_API_TOKEN}
    alex = make_client(db_url, **api)
    log_in(alex, AGENT)
    page = alex.get(f"/console/h/{handoff_id}").text  # not claimed yet: nobody handles it
    assert ADDRESS not in page and 'id="transcript-source"' in page and "&amp;live=true" not in page
    assert alex.post(f"/console/h/{handoff_id}/claim", data={"csrf": csrf_of(page)},
                     follow_redirects=False).status_code == 303

    page = alex.get(f"/console/h/{handoff_id}").text
    transcript = page.split('id="transcript"', 1)[1].split("</ol>", 1)[0]
    assert ADDRESS in transcript  # from Rasa's tracker, as the customer typed it
    assert "Live from the chat server" in page and 'id="live-fallback"' not in page
    live_url = page.split('data-stream="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert live_url.endswith("live=true")
    turns = stream_turns(alex, live_url.split("?")[0] + "?live=true", lambda t: ADDRESS in t["text"])
    assert turns[0]["text"] == "hi" and turns[-1]["role"] == "user"
    actions = [(a, t) for a, t, _ in audit_rows(db_url, "alex")]
    assert actions.count(("view_live", f"handoff:{handoff_id}")) == 2  # the page, then the stream

    jo = make_client(db_url, **api)
    log_in(jo, OTHER_AGENT)
    refused = jo.get(f"/console/h/{handoff_id}/stream?live=true")
    assert refused.status_code == 403 and "claim it first" in refused.text
    assert ("view_live_refused", f"handoff:{handoff_id}") in [(a, t) for a, t, _ in audit_rows(db_url, "jo")]
    page = jo.get(f"/console/h/{handoff_id}").text  # another agent reads the CRM's redacted turns
    assert ADDRESS not in page and crm_text in page.replace("&#39;", "'")
    assert "&amp;live=true" not in page and "view_live" not in [a for a, _, _ in audit_rows(db_url, "jo")]

    # Rasa unreachable: the handling agent gets the redacted transcript under a banner, and the audit says why
    down = make_client(db_url, rasa_api_url=f"http://127.0.0.1:{closed_port()}", rasa_api_token=RASA_API_TOKEN)
    log_in(down, AGENT)
    page = down.get(f"/console/h/{handoff_id}").text.replace("&#39;", "'")
    assert 'id="live-fallback"' in page and "can't be reached" in page
    assert ADDRESS not in page and crm_text in page
    assert "unavailable" in audit_rows(db_url, "alex")[-1][2]


def test_live_turns_reads_the_trackers_messages() -> None:
    events = [
        {"event": "action", "name": "action_session_start", "timestamp": 1.0},
        {"event": "user", "text": "/greet", "timestamp": 2.0, "parse_data": {}},
        {"event": "bot", "text": "Out for delivery, Austin", "timestamp": 3.0},
        {"event": "user", "text": "I'm at 12 Baker Street", "timestamp": 4.0,
         "parse_data": {"sentiment": {"label": "negative", "confidence": 0.9}}},
        {"event": "bot", "text": "Alex (support): On it", "timestamp": 5.0, "metadata": {"from_person": True}},
        "not an event",
    ]
    turns = console.live_turns([e for e in events if isinstance(e, dict)])
    assert [(t.id, t.role, t.text, t.payload) for t in turns] == [
        (2, "user", "opened the chat", True), (3, "bot", "Out for delivery, Austin", False),
        (4, "user", "I'm at 12 Baker Street", False), (5, "bot", "Alex (support): On it", False)]
    assert turns[2].sentiment == "negative" and turns[3].from_agent == "Alex" and turns[1].from_agent is None
    assert [t.id for t in console.live_turns(events[:5], after=3)] == [4, 5]


@pytest.mark.e2e
def test_a_chinese_conversation_gets_chinese_canned_replies_and_a_chinese_goodbye(
        make_client: Callable[..., TestClient], rasa_stack: Servers) -> None:
    """The assistant answered in Chinese, so the agent's canned replies and the message the customer gets
    when the agent resolves the conversation are Chinese (canned.zh.yml, console.CLOSING_MESSAGES)."""
    db_url = rasa_stack.db_url

    def escalated() -> int | None:
        with session_scope(db_url) as s:
            hid = s.scalar(select(m.Handoff.id).where(m.Handoff.sender_id == ZH_SENDER))
            bot_said = [t.text for t in handoff_service.turns(s, ZH_SENDER) if t.role == "bot"]
        return hid if hid and bot_said else None

    handoff_id = wait_until(escalated, "the Chinese handoff and the CRM's copy of the bot's reply")
    alex = make_client(db_url, rasa_api_url=rasa_stack.rasa_url, rasa_api_token=RASA_API_TOKEN)
    log_in(alex, AGENT)
    page = alex.get(f"/console/h/{handoff_id}").text
    menu = page.split('<select id="canned">', 1)[1].split("</select>", 1)[0]
    assert ">问候<" in menu and "让您久等了" in menu and "Greeting" not in menu
    assert alex.post(f"/console/h/{handoff_id}/claim", data={"csrf": csrf_of(page)},
                     follow_redirects=False).status_code == 303
    resolved = alex.post(f"/console/h/{handoff_id}/resolve", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert resolved.status_code == 303
    tracker = httpx.get(f"{rasa_stack.rasa_url}/conversations/{ZH_SENDER}/tracker",
                        params={"token": RASA_API_TOKEN}, timeout=30).json()
    said = [e["text"] for e in tracker["events"] if e.get("event") == "bot" and e.get("text")]
    assert any(t.startswith("感谢您的耐心等待！Alex已将这次咨询标记为已解决") for t in said), said[-3:]
    assert not any("marked this conversation as resolved" in t for t in said)


def test_the_conversations_language_is_the_one_the_assistant_answered_in() -> None:
    at = datetime(2026, 12, 1)

    def turn(role: str, text: str, **kw: object) -> handoff_service.TurnView:
        return handoff_service.TurnView(1, role, text, at, **kw)

    language = handoff_service.conversation_language
    assert language([]) == "en"
    assert language([turn("user", "你好"), turn("bot", "您好！有什么可以帮您？")]) == "zh"
    assert language([turn("user", "hi, 190003?"), turn("bot", "您好"), turn("user", "ok thanks")]) == "zh"
    assert language([turn("bot", "您好"), turn("bot", "Alex (support): hello", from_agent="Alex"),
                     turn("bot", "Hi! How can I help?")]) == "en"
    assert language([turn("user", "opened the chat", payload=True), turn("user", "我的订单呢")]) == "zh"
    assert [r["title"] for r in console.canned_responses(language="zh")][0] == "问候"
    assert [r["title"] for r in console.canned_responses()][0] == "Greeting"
    assert len(console.canned_responses(language="zh")) == len(console.canned_responses())
