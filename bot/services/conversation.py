"""Per-message bookkeeping for the CRM: every turn is logged with its sentiment, and a
customer who is clearly upset twice in a row is offered a human (recorded as a ticket).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import interactions as interactions_repo
from bot.db.models import Interaction
from bot.services import tickets as ticket_service

UPSET_SCORE = 0.7  # negative with at least this confidence counts as "clearly upset"
STREAK_TO_OFFER = 2


@dataclass(frozen=True)
class Mood:
    label: str | None
    score: float | None
    upset_streak: int
    offer_human: bool
    ticket_number: str | None = None


def is_upset(label: str | None, score: float | None) -> bool:
    return label == "negative" and (score or 0.0) >= UPSET_SCORE


def upset_streak(session: Session, conversation_id: str, limit: int = 10) -> int:
    """How many of the latest user messages in a row were clearly upset."""
    rows = session.execute(
        select(Interaction.sentiment_label, Interaction.sentiment_score)
        .where(Interaction.conversation_id == conversation_id, Interaction.role == "user")
        .order_by(Interaction.id.desc())
        .limit(limit)
    ).all()
    streak = 0
    for label, score in rows:
        if not is_upset(label, score):
            break
        streak += 1
    return streak


def record_user_message(
    session: Session,
    conversation_id: str,
    text: str,
    label: str | None,
    score: float | None,
    customer_id: int | None = None,
) -> Mood:
    """Logs the message; offers a human exactly when the upset streak reaches two."""
    interactions_repo.log(
        session, conversation_id=conversation_id, role="user", text=text, customer_id=customer_id,
        sentiment_label=label, sentiment_score=score,
    )
    streak = upset_streak(session, conversation_id)
    if streak != STREAK_TO_OFFER:
        return Mood(label, score, streak, False)
    ticket = ticket_service.create_ticket(
        session, conversation_id, "upset", "Customer upset twice in a row: offered a human agent",
        description=text, customer_id=customer_id, priority="high",
    )
    return Mood(label, score, streak, True, ticket.number)


def record_bot_messages(session: Session, conversation_id: str, texts: list[str]) -> int:
    """Logs what the assistant answered, so agents see whole conversations in the CRM."""
    for text in texts[:20]:
        interactions_repo.log(session, conversation_id=conversation_id, role="bot", text=str(text))
    return min(len(texts), 20)
