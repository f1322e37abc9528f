"""Product recommendations for the conversation: model first, best sellers as a fallback.

Business rules are always applied here with live data from the database, whatever the model
says: never an out-of-stock product, never the product being discussed, never something the
customer already bought unless it is consumable. Each item carries one short reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.analytics.peers import segment_picks
from bot.db.models import Product
from bot.ml.recommender import RecContext
from bot.ml.serving import get_recommender
from bot.services import catalog

log = logging.getLogger(__name__)

MAX_K = 20


@dataclass(frozen=True)
class Recommendation:
    product_id: int
    sku: str
    name: str
    category: str
    price: Decimal
    reason: str


def _live_products(session: Session) -> dict[int, Product]:
    return {p.id: p for p in session.scalars(select(Product))}


def _valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _to_rec(p: Product, reason: str) -> Recommendation:
    return Recommendation(p.id, p.sku, p.name, p.category, Decimal(str(p.price)), reason)


def _blocked(
    session: Session, customer_id: int | None, context_product_id: int | None, products: dict[int, Product]
) -> set[int]:
    """Product ids the rules forbid for this customer/context (stock is checked separately)."""
    blocked: set[int] = set()
    if context_product_id is not None:
        blocked.add(context_product_id)
    if customer_id is not None:
        for pid in catalog.purchased_product_ids(session, customer_id):
            p = products.get(pid)
            if p is None or not p.consumable:
                blocked.add(pid)
    return blocked


def _model_recs(
    session: Session,
    customer_id: int | None,
    k: int,
    context_product_id: int | None,
    products: dict[int, Product],
    blocked: set[int],
    similar_only: bool,
) -> list[Recommendation]:
    model = get_recommender()
    if model is None:
        return []
    purchased = catalog.purchased_product_ids(session, customer_id) if customer_id is not None else set()
    ctx = RecContext(
        product_id=context_product_id,
        stock={pid: int(p.stock or 0) for pid, p in products.items()},
        purchased=purchased,
        consumable={pid: bool(p.consumable) for pid, p in products.items()},
    )
    if similar_only:
        scored = model.similar(context_product_id, k + len(blocked), ctx) if context_product_id else []
    else:
        scored = model.recommend(customer_id, k + len(blocked), ctx)
    out = []
    for s in scored:
        p = products.get(s.product_id)
        if p is None or s.product_id in blocked or (p.stock or 0) <= 0:
            continue  # rules enforced here too, with live data, whatever the model did
        out.append(_to_rec(p, s.reason))
        if len(out) == k:
            break
    return out


def _fallback(
    session: Session,
    customer_id: int | None,
    k: int,
    blocked: set[int],
    products: dict[int, Product],
    have: list[Recommendation],
    category: str | None = None,
) -> list[Recommendation]:
    """Top up with best sellers: the customer's favourite category first, then overall."""
    out = list(have)
    seen = blocked | {r.product_id for r in out}
    cats: list[str | None] = []
    if category:
        cats.append(category)
    if customer_id is not None:
        fav = catalog.favourite_category(session, customer_id)
        if fav and fav not in cats:
            cats.append(fav)
    cats.append(None)
    for cat in cats:
        if len(out) >= k:
            break
        for info in catalog.best_sellers(session, category=cat, limit=k + len(seen), exclude_product_ids=seen):
            p = products.get(info.id)
            if info.id in seen or p is None or (p.stock or 0) <= 0:
                continue
            out.append(_to_rec(p, f"popular in {p.category}"))
            seen.add(info.id)
            if len(out) >= k:
                break
    return out


def _segment_recs(
    session: Session, customer_id: int | None, k: int, blocked: set[int], products: dict[int, Product]
) -> list[Recommendation]:
    """Best sellers of the customer's segment (bot/analytics) when they have little history of their own."""
    try:
        with session.begin_nested():  # a failure here must not poison the caller's transaction
            picks = segment_picks(session, customer_id, limit=k + len(blocked))
    except Exception:  # noqa: BLE001 - analytics are optional; recommendations go on without them
        log.exception("segment picks failed; recommending without them")
        return []
    if picks is None:
        return []
    out = []
    for pid in picks.product_ids:
        p = products.get(pid)
        if p is None or pid in blocked or (p.stock or 0) <= 0:
            continue
        out.append(_to_rec(p, f"popular with {picks.segment}"))
        if len(out) == k:
            break
    return out


def recommend_for_customer(
    session: Session, customer_id: int | None, k: int = 5, context_product_id: int | None = None
) -> list[Recommendation]:
    """Up to ``k`` products for a verified customer (or ``None`` = anonymous visitor).

    ``context_product_id`` is the product under discussion ("what goes with X"). Never raises
    on model problems: falls back to best sellers with reason "popular in <category>".
    """
    if not _valid_id(k):
        return []
    k = min(k, MAX_K)
    customer_id = customer_id if _valid_id(customer_id) else None
    context_product_id = context_product_id if _valid_id(context_product_id) else None
    products = _live_products(session)
    blocked = _blocked(session, customer_id, context_product_id, products)
    try:
        recs = _model_recs(session, customer_id, k, context_product_id, products, blocked, similar_only=False)
    except Exception:  # noqa: BLE001 - model failure must not break the conversation
        log.exception("recommender failed; falling back to best sellers")
        recs = []
    if context_product_id is None:  # little history: what the customer's segment buys comes first
        seg = _segment_recs(session, customer_id, k, blocked, products)
        recs = (seg + [r for r in recs if r.product_id not in {s.product_id for s in seg}])[:k]
    if len(recs) < k:
        cat = products[context_product_id].category if context_product_id in products else None
        recs = _fallback(session, customer_id, k, blocked, products, recs, category=cat)
    return recs[:k]


def popular_in_category(
    session: Session, category: str, customer_id: int | None = None, k: int = 5
) -> list[Recommendation]:
    """Best sellers of one category ("recommend some coffee") under the same business rules."""
    if not isinstance(category, str) or not category.strip() or not _valid_id(k):
        return []
    k = min(k, MAX_K)
    customer_id = customer_id if _valid_id(customer_id) else None
    products = _live_products(session)
    blocked = _blocked(session, customer_id, None, products)
    wanted = category.strip().lower()
    recs = _fallback(session, None, k, blocked, products, [], category=category)
    return [r for r in recs if r.category.lower() == wanted][:k]


def similar_products(
    session: Session, product_id: int, k: int = 5, customer_id: int | None = None
) -> list[Recommendation]:
    """Products like ``product_id`` ("something like this"), in stock, never the item itself."""
    if not _valid_id(k) or not _valid_id(product_id):
        return []
    k = min(k, MAX_K)
    customer_id = customer_id if _valid_id(customer_id) else None
    products = _live_products(session)
    if product_id not in products:
        return []
    blocked = _blocked(session, customer_id, product_id, products)
    try:
        recs = _model_recs(session, customer_id, k, product_id, products, blocked, similar_only=True)
    except Exception:  # noqa: BLE001
        log.exception("recommender failed; falling back to best sellers")
        recs = []
    if len(recs) < k:
        recs = _fallback(session, customer_id, k, blocked, products, recs, category=products[product_id].category)
    return recs[:k]
