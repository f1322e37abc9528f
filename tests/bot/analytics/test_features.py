"""Per-customer features from known rows of the seeded shop (and rows added in the test)."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bot.analytics import features
from bot.db import models as m
from bot.db.base import utcnow


def _purchases(session, cid, before):
    rows = session.execute(
        select(m.Order.created_at, m.Order.total).where(
            m.Order.customer_id == cid, m.Order.status.in_(features.PURCHASE_STATUSES), m.Order.created_at < before
        )
    ).all()
    return rows


def test_rfm_matches_the_orders_table(session):
    now = utcnow()
    f = features.compute(session, now).frame
    for cid in (1, 2, 3, 4, 10):
        rows = _purchases(session, cid, now)
        assert f.loc[cid, "frequency"] == len(rows)
        assert f.loc[cid, "monetary"] == pytest.approx(sum(float(t) for _, t in rows), abs=0.01)
        last = max(c for c, _ in rows)
        assert f.loc[cid, "recency_days"] == pytest.approx((now - last).total_seconds() / 86400, abs=1e-3)
        refunds = session.scalar(
            select(func.count()).select_from(m.Refund).join(m.Order).where(m.Order.customer_id == cid)
        )
        assert f.loc[cid, "refunds"] == refunds
    # Bob (2) has a cancelled demo order; cancelled orders are not purchases
    cancelled = session.scalar(select(func.count()).where(m.Order.customer_id == 2, m.Order.status == "cancelled"))
    assert f.loc[2, "cancelled"] == cancelled >= 1


def test_cutoff_excludes_later_rows(session):
    now = utcnow()
    cutoff = now - timedelta(days=200)
    f = features.compute(session, cutoff).frame
    for cid in (5, 6, 7):
        assert f.loc[cid, "frequency"] == len(_purchases(session, cid, cutoff))


def test_service_features_from_tickets_feedback_and_turns(session):
    now = utcnow()
    before = features.compute(session, now, [3]).frame.loc[3]
    session.add_all([
        m.SupportTicket(number="TK-999001", customer_id=3, sender_id="t-1", category="complaint",
                        subject="Late", description="late parcel", created_at=now - timedelta(days=1)),
        m.Feedback(sender_id="t-1", customer_id=3, rating=1, comment="bad", created_at=now - timedelta(days=1)),
        m.Interaction(sender_id="t-1", customer_id=3, role="user", text="this is awful",
                      sentiment_label="negative", sentiment_score=-0.9, created_at=now - timedelta(days=1)),
        # after the cutoff: ignored
        m.Feedback(sender_id="t-2", customer_id=3, rating=5, comment="", created_at=now + timedelta(days=1)),
    ])
    session.flush()
    after = features.compute(session, now, [3]).frame.loc[3]
    assert after["tickets"] == before["tickets"] + 1
    assert after["complaints"] == before["complaints"] + 1
    assert after["csat_count"] == before["csat_count"] + 1
    if before["csat_count"] == 0:
        assert after["csat_mean"] == 1.0
    turns_before = session.scalar(
        select(func.count())
        .select_from(m.Interaction)
        .where(m.Interaction.customer_id == 3, m.Interaction.role == "user")
    )
    assert turns_before >= 1
    assert after["negative_share"] > before["negative_share"] or before["negative_share"] == 1.0


def test_crm_turns_are_read_and_not_counted_twice(session):
    """When the CRM recorded a conversation, its redacted turns count and the interactions log of
    the same conversation does not count again."""
    assert features.crm_records_present(session)
    now = utcnow()
    cid = 4
    base = features.compute(session, now, [cid]).frame.loc[cid, "negative_share"]
    session.execute(text(
        "INSERT INTO conversations (id, sender_id, customer_id, started_at, last_event_at, outcome, turn_count, "
        "tasks_completed, escalated, last_fallback) VALUES (9001, 'crm-x', :c, :t, :t, 'open', 1, 0, 0, 0)"
    ), {"c": cid, "t": now - timedelta(hours=2)})
    for i in range(3):
        session.execute(text(
            "INSERT INTO turns (conversation_id, customer_id, role, event, text, sentiment_label, "
            "sentiment_probability, event_at, event_key) VALUES (9001, :c, 'user', 'user', "
            "'my [EMAIL] parcel is late', 'negative', 0.9, :t, :k)"
        ), {"c": cid, "t": now - timedelta(hours=1), "k": f"k-{i}"})
        session.add(m.Interaction(sender_id="crm-x", customer_id=cid, role="user", text="dup",
                                  sentiment_label="negative", sentiment_score=-0.9,
                                  created_at=now - timedelta(hours=1)))
    session.flush()
    turns = features.customer_turns(session, now)
    mine = turns[turns["sender_id"] == "crm-x"]
    assert len(mine) == 3 and set(mine["conversation_id"]) == {9001}
    assert (mine["score"] == -0.9).all()
    assert features.compute(session, now, [cid]).frame.loc[cid, "negative_share"] > base


def test_order_after_labels(session):
    now = utcnow()
    cutoff = now - timedelta(days=90)
    bought = set(features.order_after(session, cutoff, 90).index)
    expected = set(session.scalars(
        select(m.Order.customer_id).where(
            m.Order.created_at >= cutoff, m.Order.created_at < now, m.Order.status.in_(features.PURCHASE_STATUSES)
        )
    ))
    assert bought == expected
