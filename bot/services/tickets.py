"""Hand-over tickets for human agents."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.db import customers as customers_repo
from bot.db import tickets as tickets_repo
from bot.db.models import TICKET_PRIORITIES
from bot.services.types import TicketInfo


def _clip(text: object, limit: int) -> str:
    """Stringify, drop control characters except newlines, and cut to ``limit`` characters."""
    value = "" if text is None else str(text)
    value = "".join(c for c in value if c in "\n\t" or ord(c) >= 32)
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def create_ticket(
    session: Session,
    conversation_id: str,
    category: str,
    subject: str,
    description: str = "",
    customer_id: int | None = None,
    priority: str = "normal",
) -> TicketInfo:
    """Open a ticket; long text is truncated, unknown priority becomes 'normal'."""
    if priority not in TICKET_PRIORITIES:
        priority = "normal"
    if customer_id is not None and (
        not isinstance(customer_id, int) or customers_repo.get(session, customer_id) is None
    ):
        customer_id = None
    ticket = tickets_repo.create(
        session,
        conversation_id=_clip(conversation_id, 128) or "unknown",
        category=_clip(category, 60) or "general",
        subject=_clip(subject, 200) or "Customer request",
        description=_clip(description, 4000),
        customer_id=customer_id,
        priority=priority,
    )
    return TicketInfo(
        number=ticket.number, category=ticket.category, status=ticket.status, priority=ticket.priority
    )
