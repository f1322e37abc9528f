"""Refund/return queries (never commit)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.db._util import add_numbered, next_number
from bot.db.models import Order, OrderItem, Refund

_LOAD = (
    selectinload(Refund.order),
    selectinload(Refund.order_item).selectinload(OrderItem.product),
)


def next_refund_number(session: Session) -> str:
    return next_number(session, Refund.number, "RF-", start=500001)


def create(
    session: Session,
    *,
    order_id: int,
    amount: Decimal,
    kind: str = "refund",
    status: str = "requested",
    reason: str = "",
    order_item_id: int | None = None,
    now: datetime | None = None,
) -> Refund:
    refund = Refund(
        order_id=order_id,
        order_item_id=order_item_id,
        kind=kind,
        status=status,
        amount=amount,
        reason=reason,
    )
    if now is not None:
        refund.created_at = now
        refund.updated_at = now
    return add_numbered(session, refund, Refund.number, "RF-", start=500001)


def for_order(session: Session, order_id: int) -> list[Refund]:
    return list(
        session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.id).options(*_LOAD))
    )


def get_for_customer(session: Session, customer_id: int, number: str) -> Refund | None:
    """Refund by number only when its order belongs to ``customer_id``."""
    return session.scalar(
        select(Refund)
        .join(Order, Order.id == Refund.order_id)
        .where(Refund.number == number, Order.customer_id == customer_id)
        .options(*_LOAD)
    )


def recent_for_customer(session: Session, customer_id: int, limit: int = 3) -> list[Refund]:
    return list(
        session.scalars(
            select(Refund)
            .join(Order, Order.id == Refund.order_id)
            .where(Order.customer_id == customer_id)
            .order_by(Refund.created_at.desc(), Refund.id.desc())
            .limit(max(0, limit))
            .options(*_LOAD)
        )
    )
