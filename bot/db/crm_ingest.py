"""The CRM ingestor's bookkeeping: which events are stored (dedupe) and how far a source was read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.models import IngestedEvent, IngestOffset, Product


def seen(session: Session, event_key: str) -> bool:
    return session.get(IngestedEvent, event_key) is not None


def seen_many(session: Session, event_keys: list[str]) -> set[str]:
    """The keys already stored, in a few queries instead of one per event (issue 24)."""
    found: set[str] = set()
    for i in range(0, len(event_keys), 500):  # within every database's limit of bound parameters
        chunk = event_keys[i : i + 500]
        found.update(session.scalars(select(IngestedEvent.event_key).where(IngestedEvent.event_key.in_(chunk))))
    return found


def mark(session: Session, event_key: str, sender_id: str, event_type: str, event_at: datetime) -> None:
    """Records the key inside the caller's transaction: committed together with what the event wrote."""
    session.add(
        IngestedEvent(
            event_key=event_key,
            sender_id=sender_id[:128],
            event_type=event_type[:40],
            event_at=event_at,
            ingested_at=utcnow(),
        )
    )


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(IngestedEvent)) or 0


def get_offset(session: Session, source: str) -> int:
    row = session.get(IngestOffset, source[:200])
    return int(row.position) if row else 0


def set_offset(session: Session, source: str, position: int) -> None:
    row = session.get(IngestOffset, source[:200])
    if row is None:
        session.add(IngestOffset(source=source[:200], position=position, updated_at=utcnow()))
    elif position > row.position:
        row.position = position
        row.updated_at = utcnow()


def product_names(session: Session) -> list[str]:
    """Every product name in the catalogue (the redactor does not take them for personal data)."""
    return [n for n in session.scalars(select(Product.name).distinct()) if n]
