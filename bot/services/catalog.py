"""Product catalogue: best sellers, search and per-customer purchase facts for recommendations."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from bot.db import products as products_repo
from bot.services._convert import product_info
from bot.services.types import ProductInfo, ProductPage

MAX_QUERY = 100


def best_sellers(
    session: Session, category: str | None = None, limit: int = 5, exclude_product_ids: Iterable[int] = ()
) -> list[ProductInfo]:
    """Most sold in-stock products, optionally in one category (case-insensitive)."""
    if category is not None and (not isinstance(category, str) or len(category) > MAX_QUERY):
        return []
    limit = max(0, min(int(limit), 50))
    rows = products_repo.best_sellers(session, category or None, limit, exclude_product_ids)
    return [product_info(p) for p in rows]


def favourite_category(session: Session, customer_id: int) -> str | None:
    """Category the customer bought most units of; None without purchases."""
    counts = products_repo.category_units_for_customer(session, customer_id)
    return counts[0][0] if counts else None


def purchased_product_ids(session: Session, customer_id: int) -> set[int]:
    return products_repo.purchased_product_ids(session, customer_id)


def find_products(session: Session, query: str, limit: int = 5) -> list[ProductInfo]:
    """Substring search (LIKE wildcards in the query are matched literally)."""
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY:
        return []
    limit = max(0, min(int(limit), 50))
    return [product_info(p) for p in products_repo.search(session, query, limit)]


def categories(session: Session) -> list[str]:
    return products_repo.categories(session)


def get_product(session: Session, product_id: int) -> ProductInfo | None:
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        return None
    product = products_repo.get(session, product_id)
    return product_info(product) if product is not None else None


def list_products(session: Session, category: str | None = None, page: int = 1, per_page: int = 24) -> ProductPage:
    """The shop's product list, a page at a time; an unknown category or page gives an empty page."""
    per_page = max(1, min(int(per_page), 100))
    if category is not None and (not isinstance(category, str) or len(category) > MAX_QUERY):
        return ProductPage([], 0, 1, 1, None)
    page = max(1, int(page))
    rows, total = products_repo.page(session, category or None, (page - 1) * per_page, per_page)
    pages = max(1, -(-total // per_page))
    return ProductPage([product_info(p) for p in rows], total, page, pages, category or None)
