"""Routing: tier, value and churn risk decide who reaches a person first."""

from datetime import timedelta

from sqlalchemy import select

from bot.analytics import priority
from bot.analytics.config import CONFIG
from bot.db import models as m
from bot.db.base import utcnow
from bot.services import tickets


def _set(session, cid, value_pct, churn):
    row = session.get(m.CustomerAnalytics, cid)
    row.value_percentile = value_pct
    row.churn_risk = churn
    row.priority_score = priority.score(session.get(m.Customer, cid).tier, value_pct, churn)
    session.flush()


def _standard_customers(session, n):
    return list(session.scalars(
        select(m.Customer.id).join(m.CustomerAnalytics).where(m.Customer.tier == "standard").order_by(m.Customer.id)
    ))[:n]


def test_score_weights_in_one_place():
    cfg = CONFIG.priority
    assert priority.score("gold", 1, 1) == 1.0 and priority.score("standard", 0, 0) == 0.0
    assert priority.score("gold", 0.5, 0.5) > priority.score("silver", 0.5, 0.5) > priority.score("standard", 0.5, 0.5)
    assert priority.score("standard", 0.5, 0.9) - priority.score("standard", 0.5, 0.1) == (
        (cfg.w_churn * 0.8) / (cfg.w_tier + cfg.w_value + cfg.w_churn)
    )


def test_high_value_at_risk_customer_reaches_a_person_first(analyzed_session):
    s = analyzed_session
    loyal, valuable = _standard_customers(s, 2)
    _set(s, loyal, 0.3, 0.1)  # low value, staying
    # the same request from the same kind of customer: first as an ordinary, then as a valuable one about to leave
    _set(s, valuable, 0.3, 0.1)
    first = tickets.create_ticket(s, "conv-loyal", "human_agent", "Wants a person", customer_id=loyal)
    before = tickets.create_ticket(s, "conv-valuable-1", "human_agent", "Wants a person", customer_id=valuable)
    assert first.priority == before.priority == "normal"
    _set(s, valuable, 0.95, 0.85)
    p = priority.priority_for(s, valuable)
    assert p.high_value_at_risk and p.scored and p.level == "urgent"
    after = tickets.create_ticket(s, "conv-valuable-2", "human_agent", "Wants a person", customer_id=valuable)
    assert after.priority == "urgent"
    # opened last, served first; and with equal levels the higher score goes first
    for t in s.scalars(select(m.SupportTicket).where(m.SupportTicket.number.in_([first.number, before.number]))):
        t.created_at = utcnow() - timedelta(hours=3)
    s.flush()
    order = [q.number for q in priority.queue(s) if q.number in {first.number, before.number, after.number}]
    assert order[0] == after.number
    assert order.index(before.number) < order.index(first.number)  # same level, higher score now


def test_requested_priority_is_never_lowered_and_unknowns_are_neutral(analyzed_session):
    s = analyzed_session
    cid = _standard_customers(s, 1)[0]
    _set(s, cid, 0.0, 0.0)
    assert priority.raise_priority(s, cid, "urgent") == "urgent"
    assert priority.raise_priority(s, cid, "bogus") == "normal"
    anon = priority.priority_for(s, None)
    assert (anon.level, anon.scored) == ("normal", False)
    s.delete(s.get(m.CustomerAnalytics, cid))
    s.flush()
    unscored = priority.priority_for(s, cid)
    assert not unscored.scored and unscored.level == "normal"
