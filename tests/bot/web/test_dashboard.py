"""The dashboard router through the real app: the console's log-in, supervisor only, filters, CSV, escaping."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.models import Conversation, Customer, Feedback, FeedbackMention, Turn
from tests.bot.web.conftest import csrf_of

SUPERVISOR = ("sue", "supervisor-password-1")
AGENT = ("alan", "agent-password-123")
SCRIPT = "<script>alert('x')</script> my parcel is late"
FORMULA = "=HYPERLINK(\"http://evil.test\",\"click\")"


@pytest.fixture(scope="module")
def dash_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database with a supervisor, an agent and a few conversations of today."""
    from bot.db.migrate import upgrade
    from bot.web.auth import create_agent

    url = f"sqlite:///{tmp_path_factory.mktemp('dashweb') / 'dash.db'}"
    upgrade(url)
    now = utcnow().replace(microsecond=0)
    now = max(now - timedelta(minutes=5), now.replace(hour=0, minute=0, second=0))  # today's date, even at 00:02
    engine = create_engine(url)
    with Session(engine) as s:
        create_agent(s, SUPERVISOR[0], "Sue", SUPERVISOR[1], "supervisor")
        create_agent(s, AGENT[0], "Alan", AGENT[1], "agent")
        s.add(Customer(id=1, name="C", email="c@example.test", created_at=now))
        convs = ((1, "socketio", "resolved"), (2, "socketio", "escalated"), (3, "slack", "fallback"))
        for cid, channel, outcome in convs:
            s.add(Conversation(id=cid, sender_id=f"s{cid}", channel=channel, customer_id=1, started_at=now,
                               last_event_at=now, outcome=outcome, escalated=outcome == "escalated"))
        s.flush()
        s.add(Turn(conversation_id=2, role="user", event="user", text=SCRIPT, intent="complain",
                   sentiment_label="negative", event_at=now, event_key="k1"))
        s.add(Turn(conversation_id=3, role="user", event="user", text="asdf", intent="nlu_fallback",
                   sentiment_label="neutral", event_at=now, event_key="k2"))
        s.add(Feedback(sender_id="s1", customer_id=1, rating=5, comment="", created_at=now))
        s.add(FeedbackMention(source="turn", source_id=1, sender_id="s2", conversation_id=2,
                              topic="late delivery", aspect="parcel", quote=SCRIPT, created_at=now, computed_at=now))
        s.add(FeedbackMention(source="turn", source_id=2, sender_id="s3", conversation_id=3,
                              topic="late delivery", aspect="parcel", quote=FORMULA, created_at=now, computed_at=now))
        s.commit()
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def rows_day(dash_url: str) -> date:
    """The day the fixture's rows are on, read back (not today's date at test time: midnight may have passed)."""
    engine = create_engine(dash_url)
    with Session(engine) as s:
        day = s.scalar(select(Conversation.started_at).limit(1)).date()
    engine.dispose()
    return day


def logged_in(client: TestClient, who: tuple[str, str]) -> TestClient:
    page = client.get("/console/login")
    r = client.post("/console/login", data={"username": who[0], "password": who[1], "csrf": csrf_of(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return client


@pytest.fixture
def supervisor(make_client: Callable[..., TestClient], dash_url: str) -> TestClient:
    return logged_in(make_client(dash_url), SUPERVISOR)


URLS = ["/console/dashboard", "/console/dashboard/api/conversations", "/console/dashboard/export/csat.csv",
        "/console/dashboard/topics/late%20delivery", "/console/dashboard/conversations/2"]


@pytest.mark.parametrize("url", URLS)
def test_nothing_without_logging_in(make_client: Callable[..., TestClient], dash_url: str, url: str) -> None:
    client = make_client(dash_url)
    page = client.get(url, headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].endswith("/console/login")
    api = client.get(url, headers={"Accept": "application/json"}, follow_redirects=False)
    assert api.status_code == 401
    assert "late delivery" not in api.text and "alert" not in page.text


@pytest.mark.parametrize("url", URLS)
def test_an_agent_cannot_open_supervisor_pages(make_client: Callable[..., TestClient], dash_url: str,
                                               url: str) -> None:
    client = logged_in(make_client(dash_url), AGENT)
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 403
    assert "alert" not in r.text and "HYPERLINK" not in r.text


def test_a_forged_session_cookie_gets_nothing(make_client: Callable[..., TestClient], dash_url: str) -> None:
    client = make_client(dash_url)
    client.cookies.set("concierge_console", "forged-token", path="/console")
    assert client.get("/console/dashboard/api/conversations").status_code == 401


def test_the_page_shows_the_headline_figures_and_the_canvases(supervisor: TestClient) -> None:
    r = supervisor.get("/console/dashboard")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    html = r.text
    assert 'data-kpi="conversations">3<' in html
    assert 'data-kpi="handoff_rate">33.3%<' in html
    assert 'data-kpi="bot_resolution_rate">33.3%<' in html
    for canvas in ("conv-per-day", "csat-dist", "sentiment", "intents", "segments", "projection", "churn",
                   "lifecycle", "topics", "handoff-reasons", "agent-times", "fallback"):
        assert f'id="chart-{canvas}"' in html
    assert '<option value="slack"' in html and '<option value="socketio"' in html
    assert "/console/dashboard/chart.js" in html and "cdn" not in html.lower()
    assert "<script>alert" not in html


def test_json_per_panel_with_filters(supervisor: TestClient, rows_day: date) -> None:
    today = rows_day
    conv = supervisor.get("/console/dashboard/api/conversations").json()["data"]
    assert (conv["conversations"], conv["resolved"], conv["escalated"], conv["fallback"]) == (3, 1, 1, 1)
    slack = supervisor.get("/console/dashboard/api/conversations?channel=slack").json()["data"]
    assert slack["conversations"] == 1 and sum(slack["per_day"]["fallback"]) == 1
    msgs = supervisor.get(f"/console/dashboard/api/messages?start={today}&end={today}").json()["data"]
    assert msgs["days"] == [today.isoformat()]
    assert msgs["messages"] == 2 and msgs["fallback_rate"] == 0.5
    assert msgs["sentiment_per_day"]["negative"] == [1]
    old = supervisor.get(f"/console/dashboard/api/conversations?start={today - timedelta(days=60)}"
                         f"&end={today - timedelta(days=31)}").json()["data"]
    assert old["conversations"] == 0
    csat = supervisor.get("/console/dashboard/api/csat").json()["data"]
    assert csat["responses"] == 1 and csat["distribution"]["5"] == 1
    topics = supervisor.get("/console/dashboard/api/topics").json()["data"]
    assert topics[0]["topic"] == "late delivery" and topics[0]["mentions"] == 2
    for name in ("agents", "segments", "churn", "lifecycle"):
        assert supervisor.get(f"/console/dashboard/api/{name}").status_code == 200


def test_csv_export(supervisor: TestClient, rows_day: date) -> None:
    today = rows_day
    r = supervisor.get(f"/console/dashboard/export/conversations.csv?start={today}&end={today}&channel=socketio")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'concierge-conversations-{today}_{today}_socketio.csv' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows == [["day", "total", "resolved", "escalated", "fallback", "abandoned", "open"],
                    [today.isoformat(), "2", "1", "1", "0", "0", "0"]]
    topics = list(csv.reader(io.StringIO(supervisor.get("/console/dashboard/export/topics.csv").text)))
    assert topics[0][:2] == ["topic", "mentions"] and topics[1][:2] == ["late delivery", "2"]
    assert not any(cell.startswith("=") for row in topics for cell in row)  # formulas arrive as text
    for name in ("messages", "agents", "csat", "segments", "churn", "lifecycle"):
        assert supervisor.get(f"/console/dashboard/export/{name}.csv").status_code == 200


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/console/dashboard/api/conversations?start=2026-02-30", 400),
        ("/console/dashboard/api/conversations?start=2020-01-01&end=2026-01-01", 400),
        ("/console/dashboard/api/conversations?start=2026-03-02&end=2026-03-01", 400),
        ("/console/dashboard/api/conversations?channel=%3Cscript%3E", 400),
        ("/console/dashboard/api/conversations?start=" + "9" * 5000, 422),
        ("/console/dashboard/api/passwords", 404),
        ("/console/dashboard/export/..%2F..%2Fetc%2Fpasswd.csv", 404),
        ("/console/dashboard/conversations/999999", 404),
        ("/console/dashboard/conversations/abc", 422),
        ("/console/dashboard/topics/" + "x" * 81, 404),
    ],
)
def test_bad_requests_get_clear_errors(supervisor: TestClient, url: str, status: int) -> None:
    r = supervisor.get(url, headers={"Accept": "application/json"})
    assert r.status_code == status
    assert "Traceback" not in r.text and r.json()["detail"]


def test_topic_links_to_its_conversations_and_escapes_quotes(supervisor: TestClient) -> None:
    r = supervisor.get("/console/dashboard/topics/late%20delivery")
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "&lt;script&gt;alert(" in r.text
    assert 'href="/console/dashboard/conversations/2"' in r.text
    conv = supervisor.get("/console/dashboard/conversations/2")
    assert conv.status_code == 200 and "&lt;script&gt;alert(" in conv.text and "<script>alert" not in conv.text


def test_chartjs_is_served_locally(make_client: Callable[..., TestClient], dash_url: str) -> None:
    r = make_client(dash_url).get("/console/dashboard/chart.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "Chart.js v4.4.9" in r.text[:300]
