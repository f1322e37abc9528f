"""The supervisor dashboard in Debian's chromium: log in through the console, every chart drawn with data.

The web app runs for real (``python -m bot.web`` on a free port) on a seeded shop with a month of
CRM history written here; Chart.js comes from the app (node_modules), nothing from elsewhere.
Screenshots: var/test-artifacts/dashboard-*.png and the README's docs/img/dashboard.png.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from tests.browser.stack import ARTIFACTS
from tests.stack import ROOT, start_web

USER, PASSWORD = "sue", "supervisor-password-1"
MARKUP = "<b>late</b> again <img src=x onerror=alert(1)>"  # the newest quote: shown as text
QUOTES = {
    "late delivery": ["my parcel is three days late", "still waiting for my delivery"],
    "damaged item": ["the kettle arrived dented", "screen cracked in the box"],
    "refund delay": ["refund still not on my card", "waiting two weeks for my money"],
}


def write_history(url: str) -> None:
    """A month of conversations on three channels with turns, ratings, handoffs, topics and analytics."""
    from bot.db.base import utcnow
    from bot.db.models import (
        Conversation,
        Customer,
        CustomerAnalytics,
        Feedback,
        FeedbackMention,
        Handoff,
        SupportTicket,
        Turn,
    )
    from bot.web.auth import create_agent

    rng = random.Random(5)
    now = utcnow().replace(microsecond=0)
    engine = create_engine(url)
    with Session(engine) as s:
        create_agent(s, USER, "Sue Supervisor", PASSWORD, "supervisor")
        customers = list(s.scalars(select(Customer.id)))
        key = 0
        for cid in range(1, 401):
            started = now - timedelta(days=rng.uniform(0, 29), minutes=5)
            outcome = rng.choices(("resolved", "escalated", "fallback", "abandoned"), (60, 15, 10, 15))[0]
            sender = f"web-{cid}"
            s.add(Conversation(id=cid, sender_id=sender, channel=rng.choice(("socketio", "slack", "telegram")),
                               customer_id=rng.choice(customers), started_at=started, last_event_at=started,
                               outcome=outcome, escalated=outcome == "escalated"))
            for i in range(rng.randint(1, 4)):
                key += 1
                intent = rng.choice(("track_order", "request_refund", "greet", "nlu_fallback", "complain"))
                s.add(Turn(conversation_id=cid, role="user", event="user", text=f"message {key}", intent=intent,
                           sentiment_label=rng.choice(("negative", "neutral", "positive")),
                           event_at=started + timedelta(seconds=30 * i), event_key=f"b{key}"))
            if outcome == "resolved" and rng.random() < 0.5:
                s.add(Feedback(sender_id=sender, rating=rng.choice((2, 3, 4, 5, 5)), created_at=started))
            if outcome == "escalated":
                ticket = SupportTicket(number=f"TW-{cid:06d}", sender_id=sender, category="handoff",
                                       subject="person", status="closed", created_at=started)
                s.add(ticket)
                s.flush()
                first = started + timedelta(seconds=rng.randint(30, 900))
                s.add(Handoff(ticket_id=ticket.id, sender_id=sender, channel="socketio",
                              reason=rng.choice(("asked_for_person", "fallbacks", "negative_sentiment")),
                              status="resolved", created_at=started, assigned_at=first, first_response_at=first,
                              resolved_at=first + timedelta(minutes=rng.randint(2, 60)), updated_at=started))
            if rng.random() < 0.3:
                topic = rng.choice(list(QUOTES))
                s.add(FeedbackMention(source="turn", source_id=cid, sender_id=sender, conversation_id=cid,
                                      topic=topic, aspect="x", quote=rng.choice(QUOTES[topic]),
                                      created_at=started, computed_at=now))
        s.add(FeedbackMention(source="turn", source_id=1, sender_id="web-1", conversation_id=1,
                              topic="late delivery", aspect="x", quote=MARKUP, created_at=now, computed_at=now))
        for c in customers:
            s.add(CustomerAnalytics(
                customer_id=c, segment=rng.choice(("loyal big spenders", "at-risk regulars", "new customers")),
                segment_index=0, churn_risk=rng.random(), expected_purchases_12m=rng.uniform(0, 5),
                expected_value_12m=Decimal(str(round(rng.uniform(10, 900), 2))), value_percentile=rng.random(),
                lifecycle_stage=rng.choice(("new", "active", "at_risk", "lapsed")), priority_score=0.1,
                recency_days=rng.uniform(0, 300), frequency=rng.randint(0, 20),
                monetary=Decimal(str(round(rng.uniform(0, 3000), 2))), computed_at=now))
        s.commit()
    engine.dispose()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from bot.seed import seed

    tmp = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{tmp / 'shop.db'}"
    seed(url, progress=None, customers=60, products=320, orders=600)
    write_history(url)
    env = {**os.environ, "DATABASE_URL": url, "CONCIERGE_VAR_DIR": str(tmp / "var"),
           "CONCIERGE_SESSION_SECRET": "dashboard-browser-session-secret-0123456789",
           "CONCIERGE_IDENTITY_SECRET": "dashboard-browser-identity-secret-0123456789"}
    for app in start_web(env, tmp / "web.log"):
        yield app.url


CHART_STATE = """() => Object.entries(window.dashboardCharts || {}).map(([id, chart]) => {
  const values = chart.data.datasets.flatMap(d => d.data).filter(v => v !== null && v !== undefined);
  const nonZero = values.filter(v => typeof v === 'object' || v > 0).length;
  const c = chart.canvas, px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < px.length; i += 16) if (px[i] > 0) painted++;
  return {id, nonZero, painted, width: c.width, height: c.height};
})"""

EXPECTED = {"conv-per-day", "containment", "handoff-reasons", "agent-times", "csat-trend", "csat-dist", "sentiment",
            "intents", "fallback", "segments", "projection", "churn", "lifecycle", "topics"}


def test_supervisor_logs_in_and_every_chart_is_drawn_with_data(browser: object, web: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
    try:
        page.goto(f"{web}/console/dashboard")
        assert page.url.endswith("/console/login")  # nothing without logging in
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/console")
        page.goto(f"{web}/console/dashboard")
        page.wait_for_selector('#dashboard[data-loaded="1"]', timeout=30_000)
        state = {c["id"]: c for c in page.evaluate(CHART_STATE)}
        assert set(state) == EXPECTED
        for cid, c in state.items():
            assert c["nonZero"] > 0, f"chart {cid} has no data"
            assert c["painted"] > 50 and c["width"] > 100, f"chart {cid} was not drawn"
        assert int(page.text_content('[data-kpi="conversations"]')) > 300
        assert page.locator("[data-testid=topic-link]").count() == 3
        assert MARKUP in page.text_content("#topic-list")  # customer text shown as text, not markup
        assert page.locator("#topic-list b, #topic-list img").count() == 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-01-charts.png"), full_page=True)
        readme = ROOT / "docs" / "img" / "dashboard.png"
        readme.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(readme), clip={"x": 0, "y": 0, "width": 1280, "height": 900})
        assert Path(readme).stat().st_size < 400_000

        # the channel filter reloads the figures; a topic leads to its conversations
        page.select_option("select[name=channel]", "slack")
        page.click(".filters button[type=submit]")
        page.wait_for_selector('#dashboard[data-loaded="1"]', timeout=30_000)
        assert "channel=slack" in page.url
        assert int(page.text_content('[data-kpi="conversations"]')) < 300
        page.goto(f"{web}/console/dashboard")
        page.wait_for_selector('#dashboard[data-loaded="1"]', timeout=30_000)
        page.click("[data-testid=topic-link] >> nth=0")
        page.wait_for_selector("[data-testid=mentions]")
        page.click("[data-testid=conversation-link] >> nth=0")
        page.wait_for_selector("[data-testid=transcript] li.turn")
        page.screenshot(path=str(ARTIFACTS / "dashboard-02-conversation.png"))
        assert errors == []
        assert hosts == {urlsplit(web).netloc}  # Chart.js and data from the app only
    finally:
        context.close()
