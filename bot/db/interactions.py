"""Conversation log (one row per user/bot turn) used for analytics; never commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Interaction

MAX_TEXT = 4000


def log(
    session: Session,
    *,
    sender_id: str,
    role: str,
    conversation_id: int | None = None,
    text: str = "",
    customer_id: int | None = None,
    intent: str | None = None,
    confidence: float | None = None,
    action: str | None = None,
    sentiment_label: str | None = None,
    sentiment_score: float | None = None,
) -> Interaction:
    """Store one turn; text is truncated to MAX_TEXT characters so huge messages cannot bloat the DB."""
    if role not in ("user", "bot"):
        raise ValueError("role must be 'user' or 'bot'")
    row = Interaction(
        sender_id=str(sender_id)[:128],
        conversation_id=conversation_id,
        role=role,
        text=(text or "")[:MAX_TEXT],
        customer_id=customer_id,
        intent=intent[:80] if intent else None,
        confidence=confidence,
        action=action[:80] if action else None,
        sentiment_label=sentiment_label[:20] if sentiment_label else None,
        sentiment_score=sentiment_score,
    )
    session.add(row)
    session.flush()
    return row


def for_conversation(session: Session, sender_id: str) -> list[Interaction]:
    return list(
        session.scalars(
            select(Interaction)
            .where(Interaction.sender_id == sender_id)
            .order_by(Interaction.created_at, Interaction.id)
        )
    )
