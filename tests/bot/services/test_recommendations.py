"""Recommendation service against the real, migrated, small-seeded SQLite database."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from bot.db.models import Order, OrderItem, Product
from bot.ml import serving
from bot.ml.recommender import HybridConfig, HybridRecommender, load_shop_data
from bot.services import catalog
from bot.services.recommendations import (
    Recommendation,
    popular_in_category,
    recommend_for_customer,
    similar_products,
)


@pytest.fixture(scope="module")
def shop_model(db_url: str) -> HybridRecommender:
    data = load_shop_data(db_url)
    emb = np.zeros((len(data.products), 0), np.float32)
    return HybridRecommender(HybridConfig(mf_epochs=5, use_content=False)).fit(data, progress=None, embeddings=emb)


@pytest.fixture
def no_model(monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    from bot.settings import get_settings

    monkeypatch.setenv("CONCIERGE_MODELS_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    serving.reset_cache()
    yield
    serving.reset_cache()
    get_settings.cache_clear()


@pytest.fixture
def with_model(shop_model, monkeypatch):  # noqa: ANN001, ANN201
    serving.reset_cache()
    serving.MODELS.put("recommender", shop_model)  # reset_cache() below forgets it
    yield shop_model
    serving.reset_cache()


def buyer(session) -> int:  # noqa: ANN001
    """A customer with several distinct purchases."""
    stmt = (
        select(Order.customer_id)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(Order.status != "cancelled")
        .group_by(Order.customer_id)
        .order_by(func.count(func.distinct(OrderItem.product_id)).desc(), Order.customer_id)
    )
    return int(session.scalars(stmt).first())


def assert_rules(session, recs: list[Recommendation], customer_id: int | None, context: int | None = None) -> None:  # noqa: ANN001
    products = {p.id: p for p in session.scalars(select(Product))}
    bought = catalog.purchased_product_ids(session, customer_id) if customer_id else set()
    ids = [r.product_id for r in recs]
    assert len(ids) == len(set(ids))
    for r in recs:
        p = products[r.product_id]
        assert p.stock > 0, r
        assert r.product_id != context
        assert r.product_id not in bought or p.consumable, r
        assert r.reason and len(r.reason) < 120
        assert (r.sku, r.name, r.category, r.price) == (p.sku, p.name, p.category, p.price)


def test_fallback_without_model_uses_favourite_category(session, no_model) -> None:  # noqa: ANN001
    cid = buyer(session)
    recs = recommend_for_customer(session, cid, k=5)
    assert len(recs) == 5
    assert_rules(session, recs, cid)
    assert all(r.reason == f"popular in {r.category}" for r in recs)
    fav = catalog.favourite_category(session, cid)
    assert recs[0].category == fav


def test_fallback_anonymous_and_similar(session, no_model) -> None:  # noqa: ANN001
    recs = recommend_for_customer(session, None, k=4)
    assert len(recs) == 4
    assert_rules(session, recs, None)
    pid = recs[0].product_id
    sim = similar_products(session, pid, k=3)
    assert len(sim) == 3 and pid not in [r.product_id for r in sim]
    assert_rules(session, sim, None, context=pid)


def test_model_recommendations_respect_rules_with_live_stock(session, with_model) -> None:  # noqa: ANN001
    cid = buyer(session)
    first = recommend_for_customer(session, cid, k=5)
    assert len(first) == 5
    assert_rules(session, first, cid)
    assert any(r.reason.startswith(("because you bought", "similar to")) for r in first)
    # the model still thinks the top item is in stock; the database says it sold out just now
    top = session.get(Product, first[0].product_id)
    top.stock = 0
    session.flush()
    second = recommend_for_customer(session, cid, k=5)
    assert first[0].product_id not in [r.product_id for r in second]
    assert_rules(session, second, cid)


def test_context_product_is_never_recommended(session, with_model) -> None:  # noqa: ANN001
    cid = buyer(session)
    context = sorted(catalog.purchased_product_ids(session, cid))[0]
    recs = recommend_for_customer(session, cid, k=5, context_product_id=context)
    assert len(recs) == 5
    assert_rules(session, recs, cid, context=context)
    sim = similar_products(session, context, k=5)
    assert sim and all(r.reason.startswith(("similar to", "popular in")) for r in sim)
    assert_rules(session, sim, None, context=context)


def test_model_failure_falls_back(session, monkeypatch) -> None:  # noqa: ANN001
    class Broken:
        def recommend(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            raise RuntimeError("boom")

        similar = recommend

    serving.reset_cache()
    serving.MODELS.put("recommender", Broken())  # reset_cache() in finally forgets it
    try:
        cid = buyer(session)
        recs = recommend_for_customer(session, cid, k=3)
        assert len(recs) == 3 and all(r.reason.startswith("popular in") for r in recs)
        assert_rules(session, recs, cid)
        assert len(similar_products(session, recs[0].product_id, k=2)) == 2
    finally:
        serving.reset_cache()


@pytest.mark.parametrize("k", [0, -3, True, "5", None])
def test_bad_k_returns_nothing(session, no_model, k) -> None:  # noqa: ANN001
    assert recommend_for_customer(session, None, k=k) == []


@pytest.mark.parametrize("bad", [-1, 0, 10**9, "7", True, None])
def test_bad_ids_are_safe(session, no_model, bad) -> None:  # noqa: ANN001
    recs = recommend_for_customer(session, bad, k=3, context_product_id=bad)
    assert len(recs) == 3
    assert similar_products(session, bad, k=3) == []


def test_popular_in_category_keeps_the_business_rules(session) -> None:  # noqa: ANN001
    customer = session.scalar(
        select(Order.customer_id)
        .join(OrderItem)
        .join(Product)
        .where(Product.category == "coffee", Product.consumable.is_(True))
        .limit(1)
    )
    assert customer is not None, "the seed has coffee buyers"
    bought = catalog.purchased_product_ids(session, customer)
    recs = popular_in_category(session, "Coffee", customer, 5)
    assert recs and all(r.category == "coffee" and r.reason == "popular in coffee" for r in recs)
    for r in recs:
        product = session.get(Product, r.product_id)
        assert product.stock > 0
        assert r.product_id not in bought or product.consumable
    assert popular_in_category(session, "", customer) == []
    assert popular_in_category(session, "no such category", customer) == []
