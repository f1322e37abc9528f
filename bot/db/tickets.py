"""Support ticket queries (never commit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import conversations
from bot.db._util import add_numbered, next_number
from bot.db.models import SupportTicket


def next_ticket_number(session: Session) -> str:
    return next_number(session, SupportTicket.number, "TK-", start=700001)


def create(
    session: Session,
    *,
    sender_id: str,
    category: str,
    subject: str,
    description: str = "",
    customer_id: int | None = None,
    priority: str = "normal",
) -> SupportTicket:
    ticket = SupportTicket(
        sender_id=sender_id,
        conversation_id=conversations.current_id(session, sender_id),
        customer_id=customer_id,
        category=category,
        subject=subject,
        description=description,
        priority=priority,
        status="open",
    )
    return add_numbered(session, ticket, SupportTicket.number, "TK-", start=700001)


OPEN_STATUSES = ("open", "pending")


def open_for_conversation(session: Session, sender_id: str) -> SupportTicket | None:
    """The conversation's oldest ticket that is still open or pending, if any."""
    return session.scalars(
        select(SupportTicket)
        .where(SupportTicket.sender_id == sender_id, SupportTicket.status.in_(OPEN_STATUSES))
        .order_by(SupportTicket.id)
        .limit(1)
    ).first()


def for_conversation(session: Session, sender_id: str) -> list[SupportTicket]:
    return list(
        session.scalars(
            select(SupportTicket)
            .where(SupportTicket.sender_id == sender_id)
            .order_by(SupportTicket.id)
        )
    )
