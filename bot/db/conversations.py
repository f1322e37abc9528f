"""CRM conversations and their turns (written by the CRM ingestor); never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db.models import (
    ChatVerification,
    Conversation,
    Customer,
    Feedback,
    FeedbackMention,
    Handoff,
    Interaction,
    SupportTicket,
    Turn,
)

# rows that belong to a conversation but can be written (by an action) before the ingestor
# has created it: their conversation_id is filled by link_unlinked
LINKED_MODELS = (SupportTicket, Interaction, Feedback, ChatVerification, Handoff, FeedbackMention)


def open_for_sender(session: Session, sender_id: str) -> Conversation | None:
    """The sender's conversation that has not ended yet (the latest one), if any."""
    return session.scalars(
        select(Conversation)
        .where(Conversation.sender_id == sender_id, Conversation.ended_at.is_(None))
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(1)
    ).first()


def reopen_latest(session: Session, sender_id: str) -> Conversation | None:
    """The sender's latest conversation, open again (its outcome is decided anew when it ends)."""
    conversation = session.scalars(
        select(Conversation)
        .where(Conversation.sender_id == sender_id)
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(1)
    ).first()
    if conversation is not None:
        conversation.ended_at = None
        conversation.outcome = "open"
        session.flush()
    return conversation


def start(session: Session, sender_id: str, started_at: datetime, channel: str | None = None) -> Conversation:
    conversation = Conversation(
        sender_id=sender_id[:128],
        channel=channel,
        started_at=started_at,
        last_event_at=started_at,
        outcome="open",
        turn_count=0,
        tasks_completed=0,
        escalated=False,
        last_fallback=False,
    )
    session.add(conversation)
    session.flush()
    return conversation


def close(session: Session, conversation: Conversation, ended_at: datetime, outcome: str) -> None:
    conversation.ended_at = max(ended_at, conversation.started_at)
    conversation.outcome = outcome
    session.flush()


def add_turn(session: Session, conversation: Conversation, **fields: object) -> Turn:
    """One turn of ``conversation``; the caller guarantees ``event_key`` is new (the ingestor's dedupe)."""
    turn = Turn(conversation_id=conversation.id, customer_id=conversation.customer_id, **fields)
    session.add(turn)
    return turn


def customer_exists(session: Session, customer_id: int) -> bool:
    return session.scalar(select(Customer.id).where(Customer.id == customer_id)) is not None


def link_customer(session: Session, conversation: Conversation, customer_id: int) -> bool:
    """Links the conversation, and its earlier turns, to a verified customer.

    Returns False (and changes nothing) for an id that is not a customer, so a stale or
    forged slot value can never attach a conversation to someone.
    """
    if conversation.customer_id == customer_id:
        return True
    if not customer_exists(session, customer_id):
        return False
    conversation.customer_id = customer_id
    session.flush()
    session.execute(
        update(Turn)
        .where(Turn.conversation_id == conversation.id, Turn.customer_id.is_(None))
        .values(customer_id=customer_id)
    )
    session.execute(
        update(Interaction)
        .where(
            Interaction.sender_id == conversation.sender_id,
            Interaction.customer_id.is_(None),
            Interaction.created_at >= conversation.started_at,
        )
        .values(customer_id=customer_id)
    )
    return True


def last_action(session: Session, conversation_id: int) -> str | None:
    """The latest action the assistant ran in the conversation (names a bot reply's source)."""
    return session.scalar(
        select(Turn.action_name)
        .where(Turn.conversation_id == conversation_id, Turn.role == "action")
        .order_by(Turn.id.desc())
        .limit(1)
    )


def idle(session: Session, before: datetime, limit: int = 500) -> list[Conversation]:
    """Open conversations whose last event is older than ``before``."""
    return list(
        session.scalars(
            select(Conversation)
            .where(Conversation.ended_at.is_(None), Conversation.last_event_at < before)
            .order_by(Conversation.last_event_at)
            .limit(limit)
        )
    )


def for_sender(session: Session, sender_id: str) -> list[Conversation]:
    return list(
        session.scalars(
            select(Conversation).where(Conversation.sender_id == sender_id).order_by(Conversation.started_at)
        )
    )


def turns_of(session: Session, conversation_id: int) -> list[Turn]:
    return list(
        session.scalars(select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.event_at, Turn.id))
    )


def current_id(session: Session, sender_id: str) -> int | None:
    """The id of the sender's latest conversation, if the ingestor has created one yet."""
    return session.scalar(
        select(Conversation.id)
        .where(Conversation.sender_id == sender_id[:128])
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(1)
    )


def link_unlinked(session: Session, sender_id: str) -> int:
    """Links the sender's rows written before their conversation existed (tickets, feedback...).

    Why: an action may write a row before the CRM ingestor has seen the conversation; the
    ingestor calls this when it processes the sender's later events. Each row goes to the
    sender's latest conversation started at or before the row was written, else the sender's
    first one (the same rule migration 0007 applied to older rows). Returns the rows linked.
    """
    if current_id(session, sender_id) is None:
        return 0
    linked = 0
    for model in LINKED_MODELS:
        of_sender = select(Conversation.id).where(Conversation.sender_id == model.sender_id)
        latest = (
            of_sender.where(Conversation.started_at <= model.created_at)
            .order_by(Conversation.started_at.desc(), Conversation.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        first = of_sender.order_by(Conversation.started_at, Conversation.id).limit(1).scalar_subquery()
        result = session.execute(
            update(model)
            .where(model.sender_id == sender_id[:128], model.conversation_id.is_(None))
            .values(conversation_id=func.coalesce(latest, first))
            .execution_options(synchronize_session=False)
        )
        linked += result.rowcount or 0
    return linked
