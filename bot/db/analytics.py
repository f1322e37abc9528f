"""Customer analytics and feedback-topic mentions (never commit; the refresh command owns the transaction)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from bot.db.models import CustomerAnalytics, FeedbackMention, SupportTicket


def replace_all(session: Session, rows: Iterable[dict]) -> int:
    """Swap every customer's analytics for ``rows`` (dicts of CustomerAnalytics columns)."""
    rows = list(rows)
    session.execute(delete(CustomerAnalytics))
    for start in range(0, len(rows), 2000):
        session.execute(insert(CustomerAnalytics), rows[start : start + 2000])
    session.flush()
    return len(rows)


def get(session: Session, customer_id: int) -> CustomerAnalytics | None:
    return session.get(CustomerAnalytics, customer_id)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(CustomerAnalytics)) or 0)


def latest_computed_at(session: Session) -> datetime | None:
    return session.scalar(select(func.max(CustomerAnalytics.computed_at)))


def all_rows(session: Session) -> list[CustomerAnalytics]:
    return list(session.scalars(select(CustomerAnalytics).order_by(CustomerAnalytics.customer_id)))


def customers_in_segment(session: Session, segment: str) -> list[int]:
    return list(session.scalars(select(CustomerAnalytics.customer_id).where(CustomerAnalytics.segment == segment)))


def stage_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(CustomerAnalytics.lifecycle_stage, func.count()).group_by(CustomerAnalytics.lifecycle_stage)
    ).all()
    return {stage: int(n) for stage, n in rows}


def open_tickets_with_analytics(session: Session, statuses: tuple[str, ...]) -> list[tuple]:
    """(ticket, priority_score or None) for tickets in ``statuses`` (the human queue)."""
    return list(
        session.execute(
            select(SupportTicket, CustomerAnalytics.priority_score)
            .outerjoin(CustomerAnalytics, CustomerAnalytics.customer_id == SupportTicket.customer_id)
            .where(SupportTicket.status.in_(statuses))
        ).all()
    )


# -- feedback mentions ---------------------------------------------------------------------------
def replace_mentions(session: Session, rows: Iterable[dict]) -> int:
    rows = list(rows)
    session.execute(delete(FeedbackMention))
    for start in range(0, len(rows), 2000):
        session.execute(insert(FeedbackMention), rows[start : start + 2000])
    session.flush()
    return len(rows)


def mentions_between(session: Session, start: datetime, end: datetime) -> list[FeedbackMention]:
    return list(
        session.scalars(
            select(FeedbackMention)
            .where(FeedbackMention.created_at >= start, FeedbackMention.created_at < end)
            .order_by(FeedbackMention.created_at.desc(), FeedbackMention.id)
        )
    )


def mention_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(FeedbackMention)) or 0)
