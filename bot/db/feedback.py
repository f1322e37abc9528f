"""Feedback queries (never commit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import conversations
from bot.db.models import Feedback


def create(
    session: Session,
    *,
    sender_id: str,
    customer_id: int | None = None,
    rating: int | None = None,
    comment: str = "",
) -> Feedback:
    row = Feedback(
        sender_id=sender_id,
        conversation_id=conversations.current_id(session, sender_id),
        customer_id=customer_id,
        rating=rating,
        comment=comment,
    )
    session.add(row)
    session.flush()
    return row


def for_conversation(session: Session, sender_id: str) -> list[Feedback]:
    return list(
        session.scalars(
            select(Feedback).where(Feedback.sender_id == sender_id).order_by(Feedback.id)
        )
    )
