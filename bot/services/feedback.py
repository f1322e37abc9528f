"""Conversation ratings and comments."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.db import feedback as feedback_repo
from bot.services.errors import InvalidInput
from bot.services.tickets import _clip


def record_feedback(
    session: Session,
    conversation_id: str,
    customer_id: int | None = None,
    rating: int | None = None,
    comment: str = "",
) -> int:
    """Store feedback and return its id; InvalidInput for a rating outside 1-5."""
    if rating is not None:
        try:
            rating = int(rating)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("invalid_rating", "Please rate from 1 to 5.") from exc
        if not 1 <= rating <= 5:
            raise InvalidInput("invalid_rating", "Please rate from 1 to 5.")
    if customer_id is not None and (
        not isinstance(customer_id, int) or customers_repo.get(session, customer_id) is None
    ):
        customer_id = None
    row = feedback_repo.create(
        session,
        conversation_id=_clip(conversation_id, 128) or "unknown",
        customer_id=customer_id,
        rating=rating,
        comment=_clip(comment, 2000),
    )
    return row.id
