"""The agent console's access rules, through real HTTP handling (TestClient) on a seeded database.

Nothing without logging in; agents cannot reach supervisor pages; a shop customer's session opens
nothing in the console; forged CSRF tokens are refused; log-ins are rate limited; sessions live on
the server; cookies carry the secure flags; customer text is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.db import models as m
from bot.db.session import session_scope
from bot.services import handoff as handoff_service
from bot.services import tickets as ticket_service
from bot.web.users import DEMO_USERS, ensure_demo_users
from tests.bot.web.conftest import csrf_of, login, web_test_settings

AGENT = DEMO_USERS[0]
SUPERVISOR = DEMO_USERS[1]
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def handoff_id(fresh_db_url: str) -> int:
    """Demo users and one escalated conversation whose customer wrote an HTML/script payload."""
    with session_scope() as s:
        ensure_demo_users(s)
        customer = s.scalars(select(m.Customer).order_by(m.Customer.id)).first()
        ticket = ticket_service.create_ticket(s, "sender-xss", "handoff", "Customer asked for a human agent",
                                              XSS, customer.id, "high")
        info = handoff_service.escalate(s, handoff_service.EscalationContext(
            sender_id="sender-xss", ticket_number=ticket.number, reason="asked_for_person", channel="socketio",
            customer_id=customer.id, transcript=[("user", XSS)], intents=["contact_human_agent"]))
        conv = m.Conversation(sender_id="sender-xss", channel="socketio", started_at=datetime.utcnow(),
                              last_event_at=datetime.utcnow())
        s.add(conv)
        s.flush()
        s.add(m.Turn(conversation_id=conv.id, role="user", event="user", text=XSS, event_at=datetime.utcnow(),
                     event_key="xss-turn-1"))
        return info.handoff_id


@pytest.fixture
def console(make_client: Callable[..., TestClient], fresh_db_url: str) -> TestClient:
    return make_client(fresh_db_url)


def console_login(client: TestClient, user: tuple[str, str, str, str], password: str | None = None):  # noqa: ANN201
    page = client.get("/console/login")
    return client.post("/console/login", data={"username": user[0], "password": password or user[2],
                                               "csrf": csrf_of(page.text)}, follow_redirects=False)


def test_nothing_without_logging_in(console: TestClient, handoff_id: int) -> None:
    page = console.get("/console", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].endswith("/console/login")
    for path in (f"/console/h/{handoff_id}", f"/console/h/{handoff_id}/stream", "/console/team"):
        assert console.get(path, headers={"Accept": "application/json"}).status_code == 401, path
    csrf = csrf_of(console.get("/console/login").text)  # even with a valid CSRF token
    for action in ("claim", "reply", "note", "labels", "resolve", "handback"):
        resp = console.post(f"/console/h/{handoff_id}/{action}", data={"csrf": csrf, "text": "hi"})
        assert resp.status_code == 401, action
    with session_scope() as s:
        assert s.get(m.Handoff, handoff_id).status == "open"


def test_agent_cannot_reach_supervisor_pages(make_client, fresh_db_url: str, handoff_id: int) -> None:
    agent = make_client(fresh_db_url)
    assert console_login(agent, AGENT).status_code == 303
    assert agent.get("/console", headers={"Accept": "text/html"}).status_code == 200
    assert agent.get("/console/team").status_code == 403
    csrf = csrf_of(agent.get(f"/console/h/{handoff_id}").text)
    with session_scope() as s:
        sam = s.scalars(select(m.Agent).where(m.Agent.username == SUPERVISOR[0])).one().id
    resp = agent.post(f"/console/h/{handoff_id}/assign", data={"csrf": csrf, "agent_id": sam})
    assert resp.status_code == 403
    supervisor = make_client(fresh_db_url)
    assert console_login(supervisor, SUPERVISOR).status_code == 303
    team = supervisor.get("/console/team")
    assert team.status_code == 200 and "Audit log" in team.text and "login" in team.text


def test_a_shop_customer_reaches_nothing_in_the_console(console: TestClient, handoff_id: int) -> None:
    with session_scope() as s:
        email = s.scalars(select(m.Customer.email).order_by(m.Customer.id)).first()
    assert login(console, email).status_code == 303  # logged in to the shop
    assert console.get(f"/console/h/{handoff_id}", headers={"Accept": "application/json"}).status_code == 401
    assert console.get("/console", headers={"Accept": "text/html"}, follow_redirects=False).status_code == 303


def test_forged_csrf_is_rejected(console: TestClient, handoff_id: int) -> None:
    page = console.get("/console/login")
    forged = {"username": AGENT[0], "password": AGENT[2], "csrf": "forged-" + csrf_of(page.text)[7:]}
    assert console.post("/console/login", data=forged, follow_redirects=False).status_code == 403
    assert console_login(console, AGENT).status_code == 303
    for data in ({"csrf": "x" * 32}, {}):
        assert console.post(f"/console/h/{handoff_id}/claim", data=data).status_code == 403
    with session_scope() as s:
        assert s.get(m.Handoff, handoff_id).agent_id is None  # nothing happened
    csrf = csrf_of(console.get(f"/console/h/{handoff_id}").text)
    assert console.post(f"/console/h/{handoff_id}/claim", data={"csrf": csrf}, follow_redirects=False).status_code \
        == 303
    with session_scope() as s:
        h = s.get(m.Handoff, handoff_id)
        assert h.status == "assigned" and h.assigned_at is not None
        actions = [a.action for a in s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id))]
        assert actions[-2:] == ["login", "claim"]


def test_login_is_rate_limited_and_failures_audited(make_client, fresh_db_url: str, handoff_id: int) -> None:
    client = make_client(fresh_db_url, console_login_per_min=3)
    codes = [console_login(client, AGENT, password="wrong-password-123").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert console_login(client, AGENT).status_code == 429  # even the right password waits
    with session_scope() as s:
        actions = [a.action for a in s.scalars(select(m.AuditEntry))]
    assert actions.count("login_failed") == 3 and "login_limited" in actions


def test_server_side_sessions_and_cookie_flags(make_client, fresh_db_url: str, handoff_id: int) -> None:
    from bot.web.app import create_app

    secure = web_test_settings(fresh_db_url, cookie_secure=True)
    client = TestClient(create_app(secure), base_url="https://testserver")  # Secure cookies need HTTPS
    resp = console_login(client, AGENT)
    cookie = resp.headers["set-cookie"]
    assert "concierge_console=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" in cookie and "Path=/console" in cookie
    token = cookie.split("concierge_console=", 1)[1].split(";", 1)[0]
    with session_scope() as s:
        stored = [r.token_hash for r in s.scalars(select(m.AgentSession))]
        assert token not in stored and len(stored) == 1  # only its hash is kept
    plain = make_client(fresh_db_url)
    plain.cookies.set("concierge_console", token, path="/console")
    assert plain.get("/console", headers={"Accept": "text/html"}).status_code == 200
    csrf = csrf_of(plain.get("/console").text)
    assert plain.post("/console/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    with session_scope() as s:
        assert list(s.scalars(select(m.AgentSession))) == []
    again = make_client(fresh_db_url)
    again.cookies.set("concierge_console", token, path="/console")
    assert again.get("/console", headers={"Accept": "application/json"}).status_code == 401


def test_customer_text_is_escaped_everywhere(console: TestClient, handoff_id: int) -> None:
    assert console_login(console, AGENT).status_code == 303
    inbox = console.get("/console").text
    page = console.get(f"/console/h/{handoff_id}").text
    for html in (inbox, page):
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page  # the transcript and the summary show it
    with console.stream("GET", f"/console/h/{handoff_id}/stream") as stream:
        lines = []
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith("data: {\"id\""):
                break
    turn = json.loads(lines[-1][6:])
    assert turn["text"] == XSS and turn["role"] == "user"  # JSON for textContent, never HTML


def test_wrong_password_and_unknown_user_look_the_same(console: TestClient, handoff_id: int) -> None:
    a = console_login(console, AGENT, password="not-the-password")
    b = console_login(console, ("nobody", "", "whatever-password", "agent"))
    assert a.status_code == b.status_code == 401
    assert "Wrong user name or password." in a.text and "Wrong user name or password." in b.text
