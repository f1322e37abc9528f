"""Hand-over tickets for human agents.

Rules: junk (empty, gibberish, oversized, injection strings: bot/services/junk.py) never opens a
ticket by itself, and a conversation has at most one open ticket: a second escalation in the same
conversation is added to the open one, which keeps the higher priority.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from bot.analytics.priority import raise_priority
from bot.db import customers as customers_repo
from bot.db import tickets as tickets_repo
from bot.db.models import TICKET_PRIORITIES, SupportTicket
from bot.services import verification
from bot.services.errors import InvalidInput, NotAllowed
from bot.services.junk import junk_reason
from bot.services.types import TicketInfo
from concierge_rasa import text as text_cleaner

MAX_DESCRIPTION = 4000
NOT_A_REQUEST = "Sorry, I couldn't understand that. Could you tell me in a few words what you need help with?"


def clip_text(text: object, limit: int) -> str:
    """Stringify, drop control characters except newlines, and cut to ``limit`` characters ending in "…"
    (the shared cleaner: a stored field shows that it was cut)."""
    return text_cleaner.clean_text(text, limit, ellipsis="…")


def create_ticket(
    session: Session,
    sender_id: str,
    category: str,
    subject: str,
    description: str = "",
    customer_id: int | None = None,
    priority: str = "normal",
    trigger_texts: Sequence[str] | None = None,
    client: str | None = None,
) -> TicketInfo:
    """Open a ticket, or add to the conversation's open one (``reused``); long text is truncated.

    ``trigger_texts`` are the customer messages that caused the escalation: if any is junk,
    InvalidInput("junk_message") is raised and nothing is stored. Unknown priority becomes 'normal'.
    """
    if trigger_texts is not None and (not trigger_texts or any(junk_reason(t) for t in trigger_texts)):
        raise InvalidInput("junk_message", NOT_A_REQUEST)
    if priority not in TICKET_PRIORITIES:
        priority = "normal"
    if customer_id is not None and (
        not isinstance(customer_id, int) or customers_repo.get(session, customer_id) is None
    ):
        customer_id = None
    priority = raise_priority(session, customer_id, priority)  # tier, value and churn risk (bot/analytics)
    sender_id = clip_text(sender_id, 128) or "unknown"
    existing = tickets_repo.open_for_conversation(session, sender_id)
    if existing is not None:
        return _add_to(existing, category, subject, description, customer_id, priority)
    if not verification.ticket_allowed(session, sender_id, client):  # caps per conversation and address
        raise NotAllowed("ticket_limit", verification.TICKET_LIMIT_MESSAGE)
    verification.record_ticket(session, client)
    ticket = tickets_repo.create(
        session,
        sender_id=sender_id,
        category=clip_text(category, 60) or "general",
        subject=clip_text(subject, 200) or "Customer request",
        description=clip_text(description, MAX_DESCRIPTION),
        customer_id=customer_id,
        priority=priority,
    )
    return TicketInfo(
        number=ticket.number, category=ticket.category, status=ticket.status, priority=ticket.priority
    )


def _add_to(
    ticket: SupportTicket, category: str, subject: str, description: str, customer_id: int | None, priority: str
) -> TicketInfo:
    """A later escalation in the same conversation: noted on the open ticket, priority raised if higher."""
    note = f"[{clip_text(category, 60) or 'general'}] {clip_text(subject, 200)}"
    if description:
        note += "\n" + clip_text(description, MAX_DESCRIPTION)
    ticket.description = clip_text(f"{ticket.description}\n\n{note}".strip(), MAX_DESCRIPTION)
    if TICKET_PRIORITIES.index(priority) > TICKET_PRIORITIES.index(ticket.priority):
        ticket.priority = priority
    if ticket.customer_id is None and customer_id is not None:
        ticket.customer_id = customer_id  # verified since the ticket was opened
    return TicketInfo(
        number=ticket.number, category=ticket.category, status=ticket.status, priority=ticket.priority, reused=True
    )
