"""Products popular with a customer's segment: recommendations for customers with little history.

A customer with one or two orders tells a recommender little; customers in the same segment
(similar recency, frequency, spend and service experience) tell more. Read from stored analytics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.analytics import features as feats
from bot.analytics.reports import customer_view, few_orders
from bot.db.base import utcnow
from bot.db.models import CustomerAnalytics, Order, OrderItem

LOOKBACK_DAYS = 365


@dataclass(frozen=True)
class SegmentPicks:
    segment: str
    product_ids: list[int]  # most bought by the segment's customers first


def segment_picks(session: Session, customer_id: int | None, limit: int = 20) -> SegmentPicks | None:
    """The segment's best sellers of the last year, for a customer with little history; else None."""
    if customer_id is None or not few_orders(session, customer_id):
        return None
    view = customer_view(session, customer_id)
    if view is None:
        return None
    since = utcnow() - timedelta(days=LOOKBACK_DAYS)
    buyers = func.count(func.distinct(Order.customer_id))
    rows = session.execute(
        select(OrderItem.product_id, buyers)
        .join(Order, Order.id == OrderItem.order_id)
        .join(CustomerAnalytics, CustomerAnalytics.customer_id == Order.customer_id)
        .where(
            CustomerAnalytics.segment == view.segment,
            Order.customer_id != customer_id,
            Order.status.in_(feats.PURCHASE_STATUSES),
            Order.created_at >= since,
        )
        .group_by(OrderItem.product_id)
        .order_by(buyers.desc(), OrderItem.product_id)
        .limit(max(1, min(limit, 200)))
    ).all()
    return SegmentPicks(view.segment, [int(pid) for pid, _ in rows])
