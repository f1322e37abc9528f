"""Queries behind the customer-360 view (bot/services/customer360.py); never commit.

Conversations come from the CRM's ``conversations``/``turns`` (written by the ingestor) where
that table exists, and from the older ``interactions`` log, grouped by conversation id, for
conversations the CRM has not recorded (seeded history, a shop running without the ingestor).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import case, func, inspect, select
from sqlalchemy.orm import Session

from bot.db.models import (
    Conversation,
    Feedback,
    Interaction,
    Order,
    Payment,
    Refund,
    SupportTicket,
    Turn,
)

CHARGED_PAYMENT_STATUSES = ("paid", "refunded")  # money that was taken (refunded payments were paid first)
REFUNDED_STATUSES = ("approved", "completed")  # refunds the shop has agreed to pay back


def crm_conversations_present(session: Session) -> bool:
    """True when the CRM ingestor's ``conversations`` and ``turns`` tables exist in this database."""
    insp = inspect(session.connection())
    return insp.has_table("conversations") and insp.has_table("turns")


def orders_by_status(session: Session, customer_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Order.status, func.count()).where(Order.customer_id == customer_id).group_by(Order.status)
    ).all()
    return {status: int(n) for status, n in rows}


def charged_total(session: Session, customer_id: int) -> Decimal:
    """What the customer paid us, over all their orders."""
    value = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0))
        .join(Order, Order.id == Payment.order_id)
        .where(Order.customer_id == customer_id, Payment.status.in_(CHARGED_PAYMENT_STATUSES))
    )
    return Decimal(str(value or 0))


def refunded_total(session: Session, customer_id: int) -> Decimal:
    value = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0))
        .join(Order, Order.id == Refund.order_id)
        .where(Order.customer_id == customer_id, Refund.status.in_(REFUNDED_STATUSES))
    )
    return Decimal(str(value or 0))


def refunds_for_customer(session: Session, customer_id: int, limit: int) -> list[Refund]:
    return list(
        session.scalars(
            select(Refund)
            .join(Order, Order.id == Refund.order_id)
            .where(Order.customer_id == customer_id)
            .order_by(Refund.created_at.desc(), Refund.id.desc())
            .limit(limit)
        )
    )


def tickets_for_customer(session: Session, customer_id: int, limit: int) -> list[SupportTicket]:
    return list(
        session.scalars(
            select(SupportTicket)
            .where(SupportTicket.customer_id == customer_id)
            .order_by(SupportTicket.created_at.desc(), SupportTicket.id.desc())
            .limit(limit)
        )
    )


def ticket_counts(session: Session, customer_id: int) -> tuple[int, int]:
    """(all tickets, tickets still open or pending)."""
    total, still_open = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((SupportTicket.status.in_(("open", "pending")), 1), else_=0)), 0),
        ).where(SupportTicket.customer_id == customer_id)
    ).one()
    return int(total), int(still_open)


def ratings_for_customer(session: Session, customer_id: int, limit: int) -> list[Feedback]:
    return list(
        session.scalars(
            select(Feedback)
            .where(Feedback.customer_id == customer_id, Feedback.rating.is_not(None))
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
            .limit(limit)
        )
    )


def crm_conversations(session: Session, customer_id: int, limit: int) -> list[Conversation]:
    return list(
        session.scalars(
            select(Conversation)
            .where(Conversation.customer_id == customer_id)
            .order_by(Conversation.started_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
    )


def crm_ratings_without_feedback(session: Session, customer_id: int, limit: int) -> list[Conversation]:
    """CSAT the ingestor recorded on a conversation that has no ``feedback`` row (no double count)."""
    stored = select(Feedback.sender_id).where(Feedback.rating.is_not(None))
    return list(
        session.scalars(
            select(Conversation)
            .where(
                Conversation.customer_id == customer_id,
                Conversation.csat_rating.is_not(None),
                Conversation.sender_id.not_in(stored),
            )
            .order_by(Conversation.started_at.desc())
            .limit(limit)
        )
    )


def logged_conversations(
    session: Session, customer_id: int, limit: int, exclude_crm: bool
) -> list[tuple[str, datetime, datetime, int]]:
    """(conversation id, first turn, last turn, turns) from ``interactions``, newest first."""
    query = (
        select(
            Interaction.sender_id,
            func.min(Interaction.created_at),
            func.max(Interaction.created_at),
            func.count(),
        )
        .where(Interaction.customer_id == customer_id)
        .group_by(Interaction.sender_id)
        .order_by(func.max(Interaction.created_at).desc())
        .limit(limit)
    )
    if exclude_crm:
        query = query.where(Interaction.sender_id.not_in(select(Conversation.sender_id)))
    return [(cid, start, end, int(n)) for cid, start, end, n in session.execute(query).all()]


def conversations_with_tickets(session: Session, sender_ids: list[str]) -> set[str]:
    if not sender_ids:
        return set()
    return set(
        session.scalars(
            select(SupportTicket.sender_id).where(SupportTicket.sender_id.in_(sender_ids))
        )
    )


def ratings_by_conversation(session: Session, sender_ids: list[str]) -> dict[str, tuple[int, str]]:
    """conversation id -> (rating, comment) of its latest rating."""
    if not sender_ids:
        return {}
    rows = session.execute(
        select(Feedback.sender_id, Feedback.rating, Feedback.comment)
        .where(Feedback.sender_id.in_(sender_ids), Feedback.rating.is_not(None))
        .order_by(Feedback.created_at, Feedback.id)
    ).all()
    return {cid: (int(rating), comment or "") for cid, rating, comment in rows}


def sentiment_points(session: Session, customer_id: int, limit: int, crm: bool) -> list[tuple[datetime, float]]:
    """(when, signed score) of the customer's messages, newest first: positive > 0 > negative.

    CRM turns carry a calibrated probability of their label; the older log a signed score.
    """
    points: list[tuple[datetime, float]] = []
    if crm:
        signed = case(
            (Turn.sentiment_label == "negative", -func.coalesce(Turn.sentiment_probability, 1.0)),
            (Turn.sentiment_label == "positive", func.coalesce(Turn.sentiment_probability, 1.0)),
            else_=0.0,
        )
        owner = func.coalesce(Turn.customer_id, Conversation.customer_id)
        points += [
            (at, float(score))
            for at, score in session.execute(
                select(Turn.event_at, signed)
                .join(Conversation, Conversation.id == Turn.conversation_id)
                .where(owner == customer_id, Turn.role == "user", Turn.sentiment_label.is_not(None))
                .order_by(Turn.event_at.desc())
                .limit(limit)
            ).all()
        ]
    query = (
        select(Interaction.created_at, Interaction.sentiment_label, Interaction.sentiment_score)
        .where(
            Interaction.customer_id == customer_id,
            Interaction.role == "user",
            Interaction.sentiment_label.is_not(None),
        )
        .order_by(Interaction.created_at.desc())
        .limit(limit)
    )
    if crm:
        query = query.where(Interaction.sender_id.not_in(select(Conversation.sender_id)))
    for at, label, score in session.execute(query).all():
        points.append((at, _signed(label, score)))
    points.sort(key=lambda p: p[0], reverse=True)
    return points[:limit]


def _signed(label: str | None, score: float | None) -> float:
    """The log's score may be signed (seeded history) or the label's probability (ingestor): use its size."""
    sign = {"negative": -1.0, "positive": 1.0}.get(label or "", 0.0)
    return sign * (abs(float(score)) if score is not None else 1.0)
