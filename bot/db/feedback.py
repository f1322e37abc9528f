"""Feedback queries (never commit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Feedback


def create(
    session: Session,
    *,
    conversation_id: str,
    customer_id: int | None = None,
    rating: int | None = None,
    comment: str = "",
) -> Feedback:
    row = Feedback(conversation_id=conversation_id, customer_id=customer_id, rating=rating, comment=comment)
    session.add(row)
    session.flush()
    return row


def for_conversation(session: Session, conversation_id: str) -> list[Feedback]:
    return list(
        session.scalars(
            select(Feedback).where(Feedback.conversation_id == conversation_id).order_by(Feedback.id)
        )
    )
