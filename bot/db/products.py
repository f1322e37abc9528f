"""Product queries (never commit)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db._util import escape_like
from bot.db.models import Order, OrderItem, Product


def get(session: Session, product_id: int) -> Product | None:
    return session.get(Product, product_id)


def categories(session: Session) -> list[str]:
    return list(session.scalars(select(Product.category).distinct().order_by(Product.category)))


def best_sellers(
    session: Session,
    category: str | None = None,
    limit: int = 5,
    exclude_ids: Iterable[int] = (),
    in_stock_only: bool = True,
) -> list[Product]:
    """Products ordered by units sold (excluding cancelled orders), then by id for stability."""
    sold = (
        select(OrderItem.product_id, func.sum(OrderItem.quantity).label("units"))
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.status != "cancelled")
        .group_by(OrderItem.product_id)
        .subquery()
    )
    stmt = select(Product).outerjoin(sold, sold.c.product_id == Product.id)
    if category:
        stmt = stmt.where(func.lower(Product.category) == category.strip().lower())
    if in_stock_only:
        stmt = stmt.where(Product.stock > 0)
    excluded = [int(i) for i in exclude_ids]
    if excluded:
        stmt = stmt.where(Product.id.not_in(excluded))
    stmt = stmt.order_by(func.coalesce(sold.c.units, 0).desc(), Product.id).limit(max(0, limit))
    return list(session.scalars(stmt))


def search(session: Session, query: str, limit: int = 5) -> list[Product]:
    """Case-insensitive substring search on name, sku and category (wildcards escaped)."""
    pattern = f"%{escape_like(query.strip().lower())}%"
    stmt = (
        select(Product)
        .where(
            func.lower(Product.name).like(pattern, escape="\\")
            | func.lower(Product.sku).like(pattern, escape="\\")
            | func.lower(Product.category).like(pattern, escape="\\")
        )
        .order_by((Product.stock > 0).desc(), Product.name)
        .limit(max(0, limit))
    )
    return list(session.scalars(stmt))


def purchased_product_ids(session: Session, customer_id: int) -> set[int]:
    stmt = (
        select(OrderItem.product_id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.customer_id == customer_id, Order.status != "cancelled")
        .distinct()
    )
    return set(session.scalars(stmt))


def category_units_for_customer(session: Session, customer_id: int) -> list[tuple[str, int]]:
    """(category, units bought) for one customer, most bought first."""
    units = func.sum(OrderItem.quantity)
    stmt = (
        select(Product.category, units)
        .join(OrderItem, OrderItem.product_id == Product.id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.customer_id == customer_id, Order.status != "cancelled")
        .group_by(Product.category)
        .order_by(units.desc(), Product.category)
    )
    return [(c, int(n)) for c, n in session.execute(stmt)]


def page(session: Session, category: str | None, offset: int, limit: int) -> tuple[list[Product], int]:
    """One page of the catalogue (by category, then name) and the number of matching products."""
    stmt = select(Product)
    count = select(func.count(Product.id))
    if category:
        stmt = stmt.where(func.lower(Product.category) == category.strip().lower())
        count = count.where(func.lower(Product.category) == category.strip().lower())
    rows = session.scalars(stmt.order_by(Product.category, Product.name, Product.id).offset(offset).limit(limit))
    return list(rows), int(session.scalar(count) or 0)
