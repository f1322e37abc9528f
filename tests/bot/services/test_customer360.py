"""bot/services/customer360.py on the seeded shop: every figure checked against rows read independently."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from bot.db import models as m
from bot.db.customer360 import crm_conversations_present
from bot.services import tickets
from bot.services.customer360 import customer_360, daily_sentiment, direction
from bot.services.errors import NotFound

ALICE, BOB = 1, 2


def rows(session, sql: str, **params):  # noqa: ANN001, ANN201
    return session.execute(text(sql), params).all()


def test_alice_profile_orders_and_spend(session):
    view = customer_360(session, ALICE)
    ((name, email, tier),) = rows(session, "SELECT name, email, tier FROM customers WHERE id = 1")
    assert (view.profile.name, view.profile.email, view.tier) == (name, email, tier) == (
        "Alice Martin",
        "alice.martin@example.com",
        tier,
    )
    counts = dict(rows(session, "SELECT status, COUNT(*) FROM orders WHERE customer_id = 1 GROUP BY status"))
    assert view.orders_by_status == counts and view.order_count == sum(counts.values())
    expected = [
        n for (n,) in rows(session, "SELECT number FROM orders WHERE customer_id = 1 ORDER BY created_at DESC, id DESC")
    ]
    assert [o.number for o in view.recent_orders] == expected[:10]
    statuses = {o.number: o.status for o in view.recent_orders}
    # the demo orders of bot/seed_demo.md, with the states the README promises
    assert {n: statuses[n] for n in ("190001", "190002", "190003", "190004")} == {
        "190001": "shipped",
        "190002": "processing",
        "190003": "delivered",
        "190004": "delivered",
    }
    ((charged,),) = rows(
        session,
        "SELECT COALESCE(SUM(p.amount), 0) FROM payments p JOIN orders o ON o.id = p.order_id "
        "WHERE o.customer_id = 1 AND p.status IN ('paid', 'refunded')",
    )
    ((refunded,),) = rows(
        session,
        "SELECT COALESCE(SUM(r.amount), 0) FROM refunds r JOIN orders o ON o.id = r.order_id "
        "WHERE o.customer_id = 1 AND r.status IN ('approved', 'completed')",
    )
    assert view.spend_to_date == Decimal(str(charged)).quantize(Decimal("0.01")) > 0
    assert view.refunded_to_date == Decimal(str(refunded)).quantize(Decimal("0.01"))
    assert view.net_spend == view.spend_to_date - view.refunded_to_date


def test_bob_refunds_and_an_unpaid_order(session):
    view = customer_360(session, BOB)
    numbers = {r.number: (r.status, r.order_number) for r in view.refunds}
    assert numbers["RF-590001"] == ("requested", "190006")  # requested: not yet money back
    assert numbers["RF-590002"] == ("completed", "190007")
    expected = rows(
        session,
        "SELECT r.number FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.customer_id = 2 "
        "ORDER BY r.created_at DESC, r.id DESC",
    )
    assert [r.number for r in view.refunds] == [n for (n,) in expected][:10]
    ((refunded,),) = rows(
        session,
        "SELECT SUM(r.amount) FROM refunds r JOIN orders o ON o.id = r.order_id "
        "WHERE o.customer_id = 2 AND r.status IN ('approved', 'completed')",
    )
    assert view.refunded_to_date == Decimal(str(refunded)).quantize(Decimal("0.01"))
    assert {o.number: o.paid for o in view.recent_orders}["190005"] is False  # awaiting the bank transfer


def test_tickets_ratings_and_logged_conversations(session):
    now = datetime(2026, 1, 10, 12, 0)
    for i, (conv, label, score) in enumerate(
        [("log-a", "negative", -0.9), ("log-a", None, None), ("log-b", "positive", 0.8), ("log-b", None, None)]
    ):
        session.add(
            m.Interaction(
                sender_id=conv,
                customer_id=ALICE,
                role="user" if label else "bot",
                text="x",
                sentiment_label=label,
                sentiment_score=score,
                created_at=now + timedelta(days=i // 2, seconds=i),
            )
        )
    session.flush()
    ticket = tickets.create_ticket(session, "log-a", "complaint", "Broken lamp", customer_id=ALICE)
    session.add(m.Feedback(sender_id="log-b", customer_id=ALICE, rating=4, comment="quick", created_at=now))
    session.flush()

    view = customer_360(session, ALICE)
    assert [t.number for t in view.tickets][0] == ticket.number
    ((total, still_open),) = rows(
        session,
        "SELECT COUNT(*), SUM(CASE WHEN status IN ('open', 'pending') THEN 1 ELSE 0 END) "
        "FROM support_tickets WHERE customer_id = 1",
    )
    assert (view.ticket_count, view.open_ticket_count) == (total, still_open)
    logged = {c.sender_id: c for c in view.conversations if c.source == "log"}
    assert (logged["log-a"].outcome, logged["log-a"].turns) == ("escalated", 2)
    assert (logged["log-b"].outcome, logged["log-b"].csat_rating, logged["log-b"].csat_comment) == (
        "resolved",
        4,
        "quick",
    )
    assert ("log-b", 4) in [(c.sender_id, c.rating) for c in view.csat]
    assert view.csat_average == pytest.approx(
        rows(session, "SELECT AVG(rating) FROM feedback WHERE customer_id = 1 AND rating IS NOT NULL")[0][0], abs=0.01
    )
    days = {p.day: p.mean for p in view.sentiment}
    assert days[now.date()] == -0.9 and days[(now + timedelta(days=1)).date()] == 0.8


def test_crm_conversations_ratings_and_sentiment_turns(session):
    assert crm_conversations_present(session)  # the schema at head has the CRM record
    start = datetime(2026, 2, 1, 9, 0)
    conv = m.Conversation(
        sender_id="crm-1",
        channel="socketio",
        customer_id=BOB,
        started_at=start,
        last_event_at=start + timedelta(minutes=5),
        ended_at=start + timedelta(minutes=5),
        outcome="resolved",
        turn_count=6,
        csat_rating=5,
        csat_comment="great",
    )
    session.add(conv)
    session.flush()
    for k, (label, p) in enumerate([("negative", 0.7), ("negative", 0.6), ("positive", 0.9), ("positive", 0.95)]):
        session.add(
            m.Turn(
                conversation_id=conv.id,
                customer_id=None,  # linked through the conversation
                role="user",
                event="user",
                text="...",
                sentiment_label=label,
                sentiment_probability=p,
                event_at=start + timedelta(days=k),
                event_key=f"crm-1-{k}",
            )
        )
    session.flush()

    view = customer_360(session, BOB)
    (crm,) = [c for c in view.conversations if c.source == "crm"]
    assert (crm.sender_id, crm.channel, crm.outcome, crm.turns, crm.csat_rating) == (
        "crm-1",
        "socketio",
        "resolved",
        6,
        5,
    )
    assert ("crm-1", 5, "great") in [(c.sender_id, c.rating, c.comment) for c in view.csat]
    crm_days = [p for p in view.sentiment if p.day >= start.date()]
    assert [(p.mean, p.messages) for p in crm_days] == [(-0.7, 1), (-0.6, 1), (0.9, 1), (0.95, 1)]
    # the same rating stored by the bot's CSAT action is not counted twice
    session.add(m.Feedback(sender_id="crm-1", customer_id=BOB, rating=5, comment="great"))
    session.flush()
    assert [c.sender_id for c in customer_360(session, BOB).csat].count("crm-1") == 1


def test_unknown_customer_and_bounds(session):
    for bad in (0, 999_999, -1, "1", None):
        with pytest.raises(NotFound):
            customer_360(session, bad)
    assert len(customer_360(session, BOB, recent=2).recent_orders) == 2
    assert len(customer_360(session, BOB, recent=10_000).recent_orders) <= 100


def test_no_other_customers_data(session):
    view = customer_360(session, ALICE)
    alice_orders = {n for (n,) in rows(session, "SELECT number FROM orders WHERE customer_id = 1")}
    assert {o.number for o in view.recent_orders} <= alice_orders
    assert all(r.order_number in alice_orders for r in view.refunds)


def test_sentiment_trend_helpers():
    t0 = datetime(2026, 3, 1)
    worse = [(t0 + timedelta(hours=h), s) for h, s in enumerate([0.8, 0.6, -0.5, -0.9])]
    better = [(t0 + timedelta(hours=h), s) for h, s in enumerate([-0.8, -0.6, 0.5, 0.9])]
    flat = [(t0 + timedelta(hours=h), s) for h, s in enumerate([0.1, 0.0, 0.1, 0.0])]
    assert (direction(worse), direction(better), direction(flat), direction(worse[:3])) == (
        "worsening",
        "improving",
        "steady",
        "unknown",
    )
    points = daily_sentiment([(t0, 1.0), (t0 + timedelta(hours=1), 0.0), (t0 + timedelta(days=1), -1.0)])
    assert [(p.day.day, p.mean, p.messages) for p in points] == [(1, 0.5, 2), (2, -1.0, 1)]
