"""Customer and address queries (never commit)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db.models import Address, Customer


def get(session: Session, customer_id: int) -> Customer | None:
    """Customer by id, including deleted ones (callers decide)."""
    return session.get(Customer, customer_id)


def get_active(session: Session, customer_id: int) -> Customer | None:
    customer = session.get(Customer, customer_id)
    return customer if customer is not None and customer.status == "active" else None


def get_by_email(session: Session, email: str) -> Customer | None:
    """Case-insensitive lookup."""
    return session.scalar(select(Customer).where(func.lower(Customer.email) == email.strip().lower()))


def email_taken(session: Session, email: str, exclude_id: int | None = None) -> bool:
    stmt = select(Customer.id).where(func.lower(Customer.email) == email.strip().lower())
    if exclude_id is not None:
        stmt = stmt.where(Customer.id != exclude_id)
    return session.scalar(stmt.limit(1)) is not None


def default_address(session: Session, customer_id: int) -> Address | None:
    return session.scalar(
        select(Address)
        .where(Address.customer_id == customer_id)
        .order_by(Address.is_default.desc(), Address.id.desc())
        .limit(1)
    )


def add_address(
    session: Session,
    customer_id: int,
    *,
    line1: str,
    city: str,
    postcode: str,
    country: str = "United States",
    line2: str | None = None,
    make_default: bool = False,
) -> Address:
    """Insert an address row; optionally make it the only default one."""
    if make_default:
        session.execute(update(Address).where(Address.customer_id == customer_id).values(is_default=False))
    address = Address(
        customer_id=customer_id,
        line1=line1,
        line2=line2,
        city=city,
        postcode=postcode,
        country=country,
        is_default=make_default,
    )
    session.add(address)
    session.flush()
    return address
