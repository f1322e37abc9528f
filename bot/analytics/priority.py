"""Who reaches a person first: escalation priority and queue order from tier, value and churn risk.

``score = w_tier * tier + w_value * value percentile + w_churn * churn risk`` (weights in
:mod:`bot.analytics.config`), all parts in 0..1. A ticket's priority level is raised (never
lowered) to "high" or "urgent" when its customer's score passes the thresholds, and the human
queue is ordered by level, then score, then age. A gold customer worth a lot who is about to
leave is therefore served before a standard customer with the same request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.analytics.config import CONFIG, PriorityConfig
from bot.db import analytics as repo
from bot.db import customers as customers_repo
from bot.db.models import TICKET_PRIORITIES

log = logging.getLogger(__name__)

UNKNOWN_VALUE_PERCENTILE = 0.5  # customers the analytics have not scored yet
UNKNOWN_CHURN = 0.0


@dataclass(frozen=True)
class Priority:
    customer_id: int | None
    score: float
    level: str  # one of TICKET_PRIORITIES: the least the ticket gets
    tier: str
    value_percentile: float
    churn_risk: float
    high_value_at_risk: bool
    scored: bool  # False when the customer has no stored analytics yet


def score(tier: str, value_percentile: float, churn_risk: float, cfg: PriorityConfig | None = None) -> float:
    """The weighted priority score in 0..1."""
    cfg = cfg or CONFIG.priority
    total = cfg.w_tier + cfg.w_value + cfg.w_churn
    raw = (
        cfg.w_tier * cfg.tier_weight.get(tier, 0.0)
        + cfg.w_value * min(max(value_percentile, 0.0), 1.0)
        + cfg.w_churn * min(max(churn_risk, 0.0), 1.0)
    )
    return raw / total if total > 0 else 0.0


def level_for(score_value: float, high_value_at_risk: bool, cfg: PriorityConfig | None = None) -> str:
    cfg = cfg or CONFIG.priority
    if high_value_at_risk or score_value >= cfg.urgent_score:
        return "urgent"
    if score_value >= cfg.high_score:
        return "high"
    return "normal"


def is_high_value_at_risk(value_percentile: float, churn_risk: float) -> bool:
    return value_percentile >= CONFIG.priority.high_value_percentile and churn_risk >= CONFIG.churn.high_risk


def priority_for(session: Session, customer_id: int | None) -> Priority:
    """The escalation priority of a customer (anonymous visitors get the neutral 'normal')."""
    if customer_id is None:
        return Priority(None, 0.0, "normal", "standard", UNKNOWN_VALUE_PERCENTILE, UNKNOWN_CHURN, False, False)
    customer = customers_repo.get(session, customer_id)
    tier = customer.tier if customer is not None else "standard"
    row = repo.get(session, customer_id)
    if row is None:
        s = score(tier, UNKNOWN_VALUE_PERCENTILE, UNKNOWN_CHURN)
        return Priority(customer_id, s, level_for(s, False), tier, UNKNOWN_VALUE_PERCENTILE, UNKNOWN_CHURN,
                        False, False)
    hvar = is_high_value_at_risk(row.value_percentile, row.churn_risk)
    s = score(tier, row.value_percentile, row.churn_risk)
    return Priority(customer_id, s, level_for(s, hvar), tier, row.value_percentile, row.churn_risk, hvar, True)


def raise_priority(session: Session, customer_id: int | None, requested: str) -> str:
    """The ticket priority to use: the requested one, raised for customers who matter most now."""
    requested = requested if requested in TICKET_PRIORITIES else "normal"
    try:
        with session.begin_nested():  # a schema without analytics must not break opening a ticket
            level = priority_for(session, customer_id).level
    except SQLAlchemyError:
        log.exception("analytics priority unavailable; keeping %s", requested)
        return requested
    return max(requested, level, key=TICKET_PRIORITIES.index)


@dataclass(frozen=True)
class QueueItem:
    number: str
    customer_id: int | None
    category: str
    subject: str
    status: str
    priority: str
    score: float
    created_at: datetime


def queue(session: Session, statuses: tuple[str, ...] = ("open", "pending")) -> list[QueueItem]:
    """Tickets waiting for a person, first to serve first: level, then customer score, then age."""
    items = [
        QueueItem(t.number, t.customer_id, t.category, t.subject, t.status, t.priority,
                  float(s) if s is not None else 0.0, t.created_at)
        for t, s in repo.open_tickets_with_analytics(session, statuses)
    ]
    rank = {p: i for i, p in enumerate(TICKET_PRIORITIES)}
    items.sort(key=lambda q: (-rank.get(q.priority, 1), -q.score, q.created_at, q.number))
    return items
