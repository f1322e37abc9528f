"""Order queries (never commit). Ownership filters live here so services cannot forget them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.db.models import Order, OrderItem, Shipment

_LOAD = (
    selectinload(Order.items).selectinload(OrderItem.product),
    selectinload(Order.shipments).selectinload(Shipment.events),
    selectinload(Order.payments),
    selectinload(Order.shipping_address),
)


def get_by_number(session: Session, number: str) -> Order | None:
    """Order by number regardless of owner: only for identity checks, never shown directly."""
    return session.scalar(select(Order).where(Order.number == number))


def get_for_customer(session: Session, customer_id: int, number: str) -> Order | None:
    """The order only when it belongs to ``customer_id``; else None (same as missing)."""
    return session.scalar(
        select(Order).where(Order.number == number, Order.customer_id == customer_id).options(*_LOAD)
    )


def recent_for_customer(session: Session, customer_id: int, limit: int = 3) -> list[Order]:
    return list(
        session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(max(0, limit))
            .options(*_LOAD)
        )
    )


def count_for_customer(session: Session, customer_id: int) -> int:
    return int(session.scalar(select(func.count(Order.id)).where(Order.customer_id == customer_id)) or 0)
