"""The dashboard's queries on known rows in a real migrated SQLite database (every figure by hand)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from bot.analytics import dashboard as d
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

DAY1 = datetime(2026, 3, 10, 9, 0)
DAY2 = datetime(2026, 3, 11, 9, 0)
OUTSIDE = datetime(2026, 2, 1, 9, 0)  # before the range
F = d.Filters(date(2026, 3, 10), date(2026, 3, 12))
F_SLACK = d.Filters(date(2026, 3, 10), date(2026, 3, 12), "slack")


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database holding exactly the rows the tests count."""
    from bot.db.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'known.db'}"
    upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s:
        customers = [Customer(id=i, name=f"C{i}", email=f"c{i}@example.test", tier="standard",
                              created_at=OUTSIDE) for i in (1, 2, 3, 4)]
        s.add_all(customers)
        # (id, channel, start, outcome, escalated)
        convs = [
            (1, "socketio", DAY1, "resolved", False),
            (2, "socketio", DAY1, "escalated", True),
            (3, "slack", DAY1, "fallback", False),
            (4, "socketio", DAY2, "resolved", False),
            (5, "slack", DAY2, "open", False),
            (6, "socketio", OUTSIDE, "resolved", False),  # outside: never counted
        ]
        for cid, channel, start, outcome, escalated in convs:
            s.add(Conversation(id=cid, sender_id=f"s{cid}", channel=channel, customer_id=1, started_at=start,
                               last_event_at=start, outcome=outcome, escalated=escalated))
        s.flush()
        turns = [  # (conversation, role, intent, sentiment, at)
            (1, "user", "track_order", "neutral", DAY1),
            (1, "bot", None, None, DAY1),
            (1, "user", "thank", "positive", DAY1 + timedelta(minutes=1)),
            (2, "user", "complain", "negative", DAY1),
            (2, "user", "nlu_fallback", "negative", DAY1 + timedelta(minutes=1)),
            (3, "user", "nlu_fallback", "neutral", DAY1),
            (4, "user", "track_order", "positive", DAY2),
            (5, "user", "track_order", "negative", DAY2),
            (6, "user", "track_order", "negative", OUTSIDE),
        ]
        for i, (cid, role, intent, label, at) in enumerate(turns):
            s.add(Turn(conversation_id=cid, role=role, event=role, text=f"t{i}", intent=intent,
                       sentiment_label=label, event_at=at, event_key=f"k{i}"))
        for sender, rating, at in (("s1", 5, DAY1), ("s4", 4, DAY2), ("s3", 1, DAY1), ("s6", 2, OUTSIDE)):
            s.add(Feedback(sender_id=sender, customer_id=1, rating=rating, comment="", created_at=at))
        s.add(Feedback(sender_id="s1", customer_id=1, rating=None, comment="no rating", created_at=DAY1))
        t1 = SupportTicket(number="TK-000001", sender_id="s2", category="handoff", subject="x",
                           status="closed", created_at=DAY1)
        t2 = SupportTicket(number="TK-000002", sender_id="s3", category="complaint", subject="x",
                           status="open", created_at=DAY1)
        t3 = SupportTicket(number="TK-000003", sender_id="s5", category="complaint", subject="x",
                           status="open", created_at=DAY2)
        s.add_all([t1, t2, t3])
        s.flush()
        s.add_all([
            Handoff(ticket_id=t1.id, sender_id="s2", channel="socketio", reason="asked_for_person", status="resolved",
                    created_at=DAY1, assigned_at=DAY1 + timedelta(seconds=30),
                    first_response_at=DAY1 + timedelta(seconds=60), resolved_at=DAY1 + timedelta(seconds=600),
                    updated_at=DAY1),
            Handoff(ticket_id=t2.id, sender_id="s3", channel="slack", reason="fallbacks", status="handed_back",
                    created_at=DAY1, first_response_at=DAY1 + timedelta(seconds=180),
                    resolved_at=DAY1 + timedelta(seconds=300), updated_at=DAY1),
            Handoff(ticket_id=t3.id, sender_id="s5", channel="slack", reason="fallbacks", status="open",
                    created_at=DAY2, updated_at=DAY2),
        ])
        for cid, seg, risk, value, stage in ((1, "loyal", 0.05, 300, "active"), (2, "loyal", 0.15, 200, "active"),
                                             (3, "at risk", 0.72, 50, "at_risk"), (4, "at risk", 0.95, 10, "lapsed")):
            s.add(CustomerAnalytics(customer_id=cid, segment=seg, segment_index=0, churn_risk=risk,
                                    expected_purchases_12m=1.0, expected_value_12m=Decimal(value),
                                    value_percentile=0.5, lifecycle_stage=stage, priority_score=0.1,
                                    recency_days=10.0 * cid, frequency=cid, monetary=Decimal(100 * cid),
                                    computed_at=DAY2))
        mentions = [  # (topic, quote, at, conversation)
            ("late delivery", "my parcel is late", DAY1, 2),
            ("late delivery", "still waiting for the parcel", DAY2, 5),
            ("late delivery", "my parcel is late", DAY2, 4),  # same wording: one example
            ("damaged item", "=HYPERLINK(\"http://evil.test\")", DAY1, 3),
            ("late delivery", "late last month", datetime(2026, 3, 8, 9, 0), 6),  # previous period
        ]
        for i, (topic, quote, at, cid) in enumerate(mentions):
            s.add(FeedbackMention(source="turn", source_id=i, sender_id=f"s{cid}", conversation_id=cid,
                                  topic=topic, aspect="parcel", quote=quote, created_at=at, computed_at=DAY2))
        s.commit()
    engine.dispose()
    return url


@pytest.fixture
def s(known: str):  # noqa: ANN201
    engine = create_engine(known)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_conversations_per_day_and_rates(s: Session) -> None:
    r = d.conversation_report(s, F)
    assert (r.conversations, r.closed, r.open) == (5, 4, 1)
    assert (r.resolved, r.escalated, r.fallback, r.abandoned) == (2, 1, 1, 0)
    assert r.bot_resolution_rate == 0.5  # 2 resolved / 4 closed
    assert r.containment_rate == 0.75  # 3 closed without a person / 4 closed
    assert r.handoff_rate == 0.2  # 1 escalated / 5
    assert r.days == ["2026-03-10", "2026-03-11", "2026-03-12"]
    assert r.per_day["total"] == [3, 2, 0]
    assert r.per_day["resolved"] == [1, 1, 0]
    assert r.per_day["escalated"] == [1, 0, 0]
    slack = d.conversation_report(s, F_SLACK)
    assert (slack.conversations, slack.fallback, slack.open) == (2, 1, 1)


def test_a_live_handoff_counts_in_the_handoff_rate(s: Session) -> None:
    """A conversation a person is handling right now is open and escalated: the rate, the stacked
    outcomes and the handoffs panel all count it (the rate used to say 0% beside live handoffs).
    Added in this test's session only, never committed."""
    t = SupportTicket(number="TK-000009", sender_id="s7", category="handoff", subject="x",
                      status="open", created_at=DAY2)
    s.add(Conversation(id=7, sender_id="s7", channel="socketio", customer_id=1, started_at=DAY2,
                       last_event_at=DAY2, outcome="open", escalated=True))
    s.add(t)
    s.flush()
    s.add(Handoff(ticket_id=t.id, sender_id="s7", channel="socketio", reason="asked_for_person",
                  status="assigned", created_at=DAY2, updated_at=DAY2))
    s.flush()
    r = d.conversation_report(s, F)
    assert (r.conversations, r.closed, r.open) == (6, 4, 2)  # both open ones: one with the bot, one with a person
    assert (r.resolved, r.escalated, r.fallback, r.abandoned) == (2, 2, 1, 0)
    assert r.handoff_rate == 0.3333  # 2 handed to a person (1 closed, 1 live) / 6, rounded
    assert r.containment_rate == 0.75  # closed ones only: unchanged by the live handoff
    assert r.bot_resolution_rate == 0.5
    assert r.per_day["escalated"] == [1, 1, 0]
    assert r.per_day["open"] == [0, 1, 0]  # open with the bot only: the live handoff is under escalated
    buckets = ("resolved", "escalated", "fallback", "abandoned", "open")
    assert [sum(r.per_day[k][i] for k in buckets) for i in range(3)] == r.per_day["total"]
    agents = d.agent_report(s, F)
    assert agents.handoffs == 4 and agents.waiting == 2
    socketio = d.conversation_report(s, d.Filters(F.start, F.end, "socketio"))
    assert (socketio.conversations, socketio.escalated, socketio.handoff_rate) == (4, 2, 0.5)
    s.rollback()
    assert d.conversation_report(s, F).escalated == 1


def test_customer_messages_sentiment_intents_fallback(s: Session) -> None:
    r = d.turn_report(s, F)
    assert r.messages == 7  # user turns in range (bot turn and the February one excluded)
    assert r.fallback_messages == 2
    assert r.fallback_rate == round(2 / 7, 4)
    assert r.sentiment_per_day["negative"] == [2, 1, 0]
    assert r.sentiment_per_day["neutral"] == [2, 0, 0]
    assert r.sentiment_per_day["positive"] == [1, 1, 0]
    assert r.negative_share_per_day == [0.4, 0.5, None]
    assert r.fallback_rate_per_day == [0.4, 0.0, None]
    assert r.top_intents[:2] == [("track_order", 3), ("nlu_fallback", 2)]
    slack = d.turn_report(s, F_SLACK)
    assert slack.messages == 2 and slack.fallback_messages == 1
    assert dict(slack.top_intents) == {"nlu_fallback": 1, "track_order": 1}


def test_agents_first_response_resolution_and_reasons(s: Session) -> None:
    r = d.agent_report(s, F)
    assert (r.handoffs, r.resolutions, r.handed_back, r.waiting) == (3, 1, 1, 1)
    assert r.avg_first_response_s == 120.0  # (60 + 180) / 2
    assert r.median_first_response_s == 120.0
    assert r.avg_resolution_s == 600.0  # only the resolved one counts
    assert r.reasons == [("fallbacks", 2), ("asked_for_person", 1)]
    assert r.ticket_categories == [("complaint", 2), ("handoff", 1)]
    assert r.first_response_per_day == [120.0, None, None]
    slack = d.agent_report(s, F_SLACK)
    assert slack.handoffs == 2 and slack.avg_first_response_s == 180.0 and slack.avg_resolution_s is None
    assert slack.ticket_categories == [("complaint", 2)]


def test_csat_distribution_and_trend(s: Session) -> None:
    r = d.csat_report(s, F)
    assert r.responses == 3  # the unrated comment and the February rating excluded
    assert r.distribution == {1: 1, 2: 0, 3: 0, 4: 1, 5: 1}
    assert r.average == round(10 / 3, 2)
    assert r.satisfied_share == round(2 / 3, 4)
    assert r.average_per_day == [3.0, 4.0, None]
    assert r.responses_per_day == [2, 1, 0]
    assert d.csat_report(s, F_SLACK).distribution == {1: 1, 2: 0, 3: 0, 4: 0, 5: 0}


def test_segments_churn_lifecycle(s: Session) -> None:
    seg = d.analytics_segments(s)
    sizes = {x["name"]: x["customers"] for x in seg["segments"]}
    assert sizes == {"loyal": 2, "at risk": 2}
    assert seg["segments"][0]["name"] == "loyal"  # sorted by mean value
    assert seg["segments"][0]["mean_expected_value_12m"] == 250.0
    from dataclasses import asdict

    from bot.analytics.reports import segment_summary

    assert seg["segments"] == [pytest.approx(asdict(x)) for x in segment_summary(s)]  # the analytics' figures
    assert len(seg["points"]) == 4 and {p["segment"] for p in seg["points"]} == {"loyal", "at risk"}
    churn = d.analytics_churn(s)
    assert churn["customers"] == [1, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    assert churn["high_risk"] == 2
    life = d.analytics_lifecycle(s, periods=3)
    assert life["today"] == {"active": 2, "at_risk": 1, "lapsed": 1}
    assert len(life["dates"]) == 3 and all(len(v) == 3 for v in life["stages"].values())


def test_topics_trend_quotes_and_conversations(s: Session) -> None:
    topics = d.analytics_topics(s, F)
    assert [t["topic"] for t in topics] == ["late delivery", "damaged item"]
    late = topics[0]
    assert late["mentions"] == 3 and late["previous"] == 1 and late["trend_pct"] == 200.0
    assert late["weekly"] == [3]
    assert [q["quote"] for q in late["examples"]] == ["still waiting for the parcel", "my parcel is late"]
    rows = d.topic_mentions(s, "late delivery", F)
    assert [r["conversation_id"] for r in rows] == [5, 4, 2]
    conv, turns = d.conversation_turns(s, 2)
    assert conv is not None and [t.text for t in turns] == ["t3", "t4"]
    assert d.conversation_turns(s, 999) == (None, [])


def test_csv_rows_and_formula_cells(s: Session) -> None:
    rows = d.csv_rows("conversations", d.conversation_report(s, F))
    assert rows[0] == ["day", "total", "resolved", "escalated", "fallback", "abandoned", "open"]
    assert rows[1] == ["2026-03-10", 3, 1, 1, 1, 0, 0]
    topics = d.csv_rows("topics", d.analytics_topics(s, F))
    assert topics[2][4] == "'=HYPERLINK(\"http://evil.test\")"  # a spreadsheet shows it, never runs it
    out = io.StringIO()
    csv.writer(out).writerows(d.csv_rows("csat", d.csat_report(s, F)))
    parsed = list(csv.reader(io.StringIO(out.getvalue())))
    assert parsed[1] == ["2026-03-10", "2", "3.0"]
    with pytest.raises(ValueError):
        d.csv_rows("nope", {})


def test_every_registered_panel_has_a_query_a_csv_and_charts(s: Session) -> None:
    """The registry is the one list the routes and the page read: each entry must work end to end."""
    assert list(d.PANELS) == ["conversations", "agents", "csat", "messages", "segments", "churn", "lifecycle",
                              "topics"]
    ids = [c.id for p in d.PANELS.values() for c in p.charts]
    assert len(ids) == len(set(ids)) == 14  # canvas ids are unique on the page
    for name, panel in d.PANELS.items():
        rows = d.csv_rows(name, d.compute(s, name, F))
        assert rows and rows[0] and all(isinstance(h, str) for h in rows[0]), name
        assert panel.charts, name


@pytest.mark.parametrize(
    ("start", "end", "channel", "message"),
    [
        ("2026-13-01", None, None, "Dates"),
        ("2026-03-12", "2026-03-10", None, "start date"),
        ("2020-01-01", "2026-01-01", None, "at most"),
        (None, None, "<script>", "Unknown channel"),
        ("x" * 10, None, None, "Dates"),
    ],
)
def test_bad_filters_are_refused(start: str | None, end: str | None, channel: str | None, message: str) -> None:
    with pytest.raises(d.FilterError, match=message):
        d.parse_filters(start, end, channel, date(2026, 3, 12))


def test_default_filters() -> None:
    f = d.parse_filters(None, "", "  ", date(2026, 3, 30))
    assert (f.start, f.end, f.channel) == (date(2026, 3, 1), date(2026, 3, 30), None)
    assert len(f.days()) == 30


def test_lifecycle_counts_equal_the_analytics_rules_on_the_seeded_shop(session: Session) -> None:
    """The dashboard's fast lifecycle history gives exactly bot.analytics.lifecycle's figures."""
    from bot.analytics import lifecycle

    end = utcnow().replace(microsecond=0)
    expected = lifecycle.stage_counts_over_time(session, end, periods=8, step_days=45)
    got = d.lifecycle_counts(session, end, periods=8, step_days=45)
    assert [g["at"] for g in got] == [e.at for e in expected]
    assert [g["counts"] for g in got] == [e.counts for e in expected]
    assert sum(got[-1]["counts"].values()) > 0 and len({s for g in got for s, n in g["counts"].items() if n}) >= 3


def test_messages_of_a_conversation_started_before_the_range_count_with_and_without_a_channel(s: Session) -> None:
    """Messages are counted by the time they were sent: one channel's figures add up to all channels'."""
    s.add(Conversation(id=7, sender_id="s7", channel="slack", started_at=datetime(2026, 3, 9, 23, 50),
                       last_event_at=DAY1, outcome="open"))
    s.flush()
    s.add(Turn(conversation_id=7, role="user", event="user", text="late one", intent="track_order",
               sentiment_label="negative", event_at=DAY1, event_key="k-late"))
    s.flush()
    try:
        everything = d.turn_report(s, F)
        per_channel = [d.turn_report(s, d.Filters(F.start, F.end, c)) for c in d.channels(s)]
        assert everything.messages == 8 and d.turn_report(s, F_SLACK).messages == 3
        assert sum(r.messages for r in per_channel) == everything.messages
        assert [sum(x) for x in zip(*(r.sentiment_per_day["negative"] for r in per_channel), strict=True)] == \
            everything.sentiment_per_day["negative"]
    finally:
        s.rollback()
