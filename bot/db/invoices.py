"""Invoice queries (never commit)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Invoice, Order


def invoice_number(order_number: str) -> str:
    return f"INV-{order_number}"


def for_order(session: Session, order_id: int) -> Invoice | None:
    return session.scalar(select(Invoice).where(Invoice.order_id == order_id).order_by(Invoice.id))


def recent_for_customer(session: Session, customer_id: int, limit: int = 3) -> list[Invoice]:
    return list(
        session.scalars(
            select(Invoice)
            .join(Order, Order.id == Invoice.order_id)
            .where(Order.customer_id == customer_id)
            .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
            .limit(max(0, limit))
        )
    )


def create(
    session: Session, *, order_id: int, order_number: str, amount: Decimal, issued_at: datetime
) -> Invoice:
    invoice = Invoice(
        number=invoice_number(order_number), order_id=order_id, amount=amount, issued_at=issued_at
    )
    session.add(invoice)
    session.flush()
    return invoice
