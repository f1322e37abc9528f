"""What people see: the queries behind the dashboard and the customer-360 panel (dataclasses out).

Stored results (``make analytics``) are read with plain queries. A customer who signed up
after the last refresh is scored on the spot with the models loaded once per process
(:mod:`bot.analytics.serving`), so the panel never shows a blank for a new customer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.analytics import clv, lifecycle, priority, serving
from bot.analytics import features as feats
from bot.analytics.config import CONFIG
from bot.analytics.refresh import output_dir
from bot.analytics.segments import segment_matrix
from bot.analytics.topics import TopicSummary, top_topics
from bot.db import analytics as repo
from bot.db.base import utcnow
from bot.db.models import Customer, Order

__all__ = [
    "CustomerAnalyticsView", "SegmentSummary", "TopicSummary", "customer_view", "lifecycle_history",
    "run_summary", "segment_summary", "top_topics",
]


@dataclass(frozen=True)
class CustomerAnalyticsView:
    customer_id: int
    segment: str
    churn_risk: float
    expected_purchases_12m: float
    expected_value_12m: Decimal
    value_percentile: float | None  # None when scored on the spot (no ranking against the others)
    lifecycle_stage: str  # new | active | at_risk | lapsed | won_back
    lifecycle_label: str  # "at risk"
    priority_score: float
    high_value_at_risk: bool
    computed_at: datetime
    stored: bool  # False: scored on the spot after the last refresh


def customer_view(session: Session, customer_id: int) -> CustomerAnalyticsView | None:
    """Segment, churn risk, 12-month value and lifecycle stage of one customer (None: unknown)."""
    if not isinstance(customer_id, int) or isinstance(customer_id, bool) or customer_id <= 0:
        return None
    row = repo.get(session, customer_id)
    if row is not None:
        return CustomerAnalyticsView(
            row.customer_id, row.segment, row.churn_risk, row.expected_purchases_12m,
            Decimal(str(row.expected_value_12m)), row.value_percentile, row.lifecycle_stage,
            lifecycle.STAGE_LABELS[row.lifecycle_stage], row.priority_score,
            priority.is_high_value_at_risk(row.value_percentile, row.churn_risk), row.computed_at, True,
        )
    return _score_now(session, customer_id)


def _score_now(session: Session, customer_id: int) -> CustomerAnalyticsView | None:
    customer = session.get(Customer, customer_id)
    seg_model, churn_model, value_model = serving.segment_model(), serving.churn_model(), serving.clv_model()
    if customer is None or customer.status != "active" or None in (seg_model, churn_model, value_model):
        return None
    now = utcnow().replace(microsecond=0)
    frame = feats.compute(session, now, [customer_id])
    if not len(frame.frame):
        return None
    segment = seg_model.names[int(seg_model.predict(segment_matrix(frame))[0])]
    risk = float(churn_model.predict_proba(frame.matrix(tuple(churn_model.feature_names)))[0])
    tx = feats.purchases(session, before=now)
    value = clv.score_shop(value_model, tx[tx["customer_id"] == customer_id], now, [customer_id])[customer_id]
    stage = lifecycle.current_stages(session, now, {customer_id: risk}).get(customer_id, "new")
    pct = priority.UNKNOWN_VALUE_PERCENTILE
    return CustomerAnalyticsView(
        customer_id, segment, risk, value.expected_purchases,
        Decimal(str(value.expected_value)).quantize(Decimal("0.01")),
        None, stage, lifecycle.STAGE_LABELS[stage], priority.score(customer.tier, pct, risk), False, now, False,
    )


@dataclass(frozen=True)
class SegmentSummary:
    name: str
    customers: int
    share: float
    mean_expected_value_12m: float
    mean_churn_risk: float
    mean_recency_days: float
    mean_frequency: float


def segment_summary(session: Session) -> list[SegmentSummary]:
    """One line per segment (the dashboard's table beside var/analytics/segments.png)."""
    rows = repo.all_rows(session)
    total = len(rows) or 1
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.segment, []).append(r)
    out = []
    for name, members in groups.items():
        n = len(members)
        out.append(SegmentSummary(
            name, n, n / total,
            sum(float(m.expected_value_12m) for m in members) / n,
            sum(m.churn_risk for m in members) / n,
            sum(m.recency_days for m in members) / n,
            sum(m.frequency for m in members) / n,
        ))
    return sorted(out, key=lambda s: -s.mean_expected_value_12m)


def lifecycle_history(session: Session, periods: int = 12, step_days: int = 30) -> list[lifecycle.StageCounts]:
    """Customers per lifecycle stage over time (monthly by default), oldest first."""
    return lifecycle.stage_counts_over_time(session, utcnow().replace(microsecond=0), periods, step_days)


def run_summary() -> dict | None:
    """The last refresh's figures (churn AUC, k, sizes, topics, chart paths), or None before any."""
    path = output_dir() / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def few_orders(session: Session, customer_id: int) -> bool:
    """True when a customer has too little history for personal recommendations."""
    n = session.scalar(
        select(func.count()).select_from(Order).where(
            Order.customer_id == customer_id, Order.status.in_(feats.PURCHASE_STATUSES)
        )
    )
    return int(n or 0) <= CONFIG.few_orders
