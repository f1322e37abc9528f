"""Security counters and chat verifications (never commit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db import conversations
from bot.db.models import ChatVerification, SecurityCounter


def get_counter(session: Session, kind: str, key: str) -> SecurityCounter | None:
    return session.scalar(select(SecurityCounter).where(SecurityCounter.kind == kind, SecurityCounter.key == key))


def counter_for_update(session: Session, kind: str, key: str, now: datetime) -> SecurityCounter:
    """The counter of (kind, key), created at zero when absent (safe against a concurrent insert)."""
    counter = get_counter(session, kind, key)
    if counter is not None:
        return counter
    try:
        with session.begin_nested():
            counter = SecurityCounter(kind=kind, key=key[:128], count=0, window_start=now, last_at=now)
            session.add(counter)
            session.flush()
    except IntegrityError:
        counter = get_counter(session, kind, key)
        if counter is None:
            raise
    return counter


def delete_counter(session: Session, kind: str, key: str) -> None:
    session.execute(delete(SecurityCounter).where(SecurityCounter.kind == kind, SecurityCounter.key == key))


def get_chat_verification(session: Session, sender_id: str, session_id: str) -> ChatVerification | None:
    return session.scalar(
        select(ChatVerification).where(
            ChatVerification.sender_id == sender_id, ChatVerification.session_id == session_id
        )
    )


def save_chat_verification(
    session: Session, sender_id: str, session_id: str, customer_id: int, now: datetime
) -> ChatVerification:
    """Binds ``customer_id`` to the conversation and session (replacing an earlier binding)."""
    row = get_chat_verification(session, sender_id, session_id)
    if row is None:
        row = ChatVerification(
            sender_id=sender_id,
            conversation_id=conversations.current_id(session, sender_id),
            session_id=session_id,
            customer_id=customer_id,
        )
        session.add(row)
    row.customer_id = customer_id
    row.created_at = now
    row.last_seen_at = now
    session.flush()
    return row


def delete_chat_verifications(session: Session, sender_id: str) -> int:
    result = session.execute(delete(ChatVerification).where(ChatVerification.sender_id == sender_id))
    return int(result.rowcount or 0)
