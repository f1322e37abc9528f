from __future__ import annotations

import numpy as np
import pytest

from bot.ml.base import ModelError
from bot.ml.recommender import (
    HybridConfig,
    HybridRecommender,
    InteractionData,
    ItemRecord,
    RatingMF,
    RecContext,
    evaluate_hit_rate,
)

# 12 products in two "worlds": kitchen (1-6) and garden (7-12); 12 is a consumable.
PRODUCTS = [
    ItemRecord(
        i, f"{'Kitchen' if i <= 6 else 'Garden'} thing {i}", "Kitchen" if i <= 6 else "Garden", "", consumable=(i == 12)
    )
    for i in range(1, 13)
]


def planted_data(seed: int = 0) -> InteractionData:
    """Customers 1-20 buy kitchen items, 21-40 garden items; each misses one item of its world."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for c in range(1, 41):
        world = list(range(1, 7)) if c <= 20 else list(range(7, 13))
        for p in rng.choice(world, size=4, replace=False):
            users.append(c)
            items.append(int(p))
    return InteractionData(PRODUCTS, np.array(users), np.array(items))


def fit(data: InteractionData | None = None, **cfg) -> HybridRecommender:  # noqa: ANN003
    emb = np.zeros((len(PRODUCTS), 0), np.float32)
    return HybridRecommender(HybridConfig(mf_epochs=15, **cfg)).fit(
        data or planted_data(), progress=None, embeddings=emb
    )


@pytest.fixture(scope="module")
def model() -> HybridRecommender:
    return fit()


def test_recovers_planted_worlds(model: HybridRecommender) -> None:
    for customer, world in ((3, range(1, 7)), (30, range(7, 13))):
        recs = model.recommend(customer, 2)
        assert recs and all(r.product_id in world for r in recs), recs
        bought = set(model._history(customer).tolist())
        assert all(model._item_pos[r.product_id] not in bought or r.product_id == 12 for r in recs)


def test_mf_component_alone_recovers_worlds() -> None:
    m = fit(w_item=0.0, w_content=0.0, w_pop=0.0, w_mf=1.0)
    hits = sum(r.product_id <= 6 for c in range(1, 21) for r in m.recommend(c, 1))
    hits += sum(r.product_id > 6 for c in range(21, 41) for r in m.recommend(c, 1))
    assert hits >= 36  # >= 90% of customers get an item of their own world


def test_business_rules(model: HybridRecommender) -> None:
    customer = 25  # garden world
    bought = {int(model.item_ids[k]) for k in model._history(customer)}
    free = [r.product_id for r in model.recommend(customer, 3)]
    sold_out, discussed = free[0], free[1]  # the model's own favourites
    stock = {p.id: 10 for p in PRODUCTS}
    stock[sold_out] = 0
    recs = model.recommend(customer, 12, RecContext(product_id=discussed, stock=stock))
    ids = [r.product_id for r in recs]
    assert sold_out not in ids  # out of stock
    assert discussed not in ids  # the item being discussed
    assert not (set(ids) & (bought - {12}))  # bought, not consumable
    assert len(ids) == len(set(ids))
    assert all(r.reason for r in recs)
    consumer = next(c for c in range(21, 41) if 12 in {int(model.item_ids[k]) for k in model._history(c)})
    assert 12 in [r.product_id for r in model.recommend(consumer, 12)]  # a consumable may come back


def test_live_purchases_and_consumable_flags_from_context(model: HybridRecommender) -> None:
    recs = model.recommend(3, 12, RecContext(purchased=[7, 12], consumable={12: False}))
    ids = {r.product_id for r in recs}
    assert 7 not in ids and 12 not in ids


def test_reasons(model: HybridRecommender) -> None:
    rec = model.recommend(3, 1)[0]
    assert rec.reason.startswith("because you bought Kitchen thing")
    anon = model.recommend(None, 3)
    assert anon and all(r.reason.startswith("popular in") for r in anon)
    sim = model.similar(2, 3)
    assert sim and all(r.reason == "similar to Kitchen thing 2" for r in sim)
    assert all(r.product_id != 2 and r.product_id <= 6 for r in sim)


def test_anonymous_with_context_and_category_and_unknown_ids(model: HybridRecommender) -> None:
    recs = model.recommend(None, 3, RecContext(product_id=8))
    assert recs and all(r.product_id != 8 and r.product_id > 6 for r in recs)
    assert all(r.product_id > 6 for r in model.popular(4, RecContext(category="garden")))
    assert model.recommend(999_999, 3)  # unknown customer: cold start, not an error
    assert model.similar(999_999, 3) == []
    assert model.recommend(3, 0) == []
    assert model.recommend(3, 5, RecContext(stock={})) == []  # nothing in stock -> nothing


def test_content_similarity_with_real_encoder() -> None:
    products = [
        ItemRecord(1, "Stainless steel frying pan", "Kitchen", "Non-stick pan for eggs and pancakes"),
        ItemRecord(2, "Cast iron skillet", "Kitchen", "Heavy pan for searing steak"),
        ItemRecord(3, "Garden hose 20m", "Garden", "Flexible hose for watering plants"),
        ItemRecord(4, "Wireless earbuds", "Electronics", "Bluetooth headphones with charging case"),
    ]
    data = InteractionData(products, np.array([1, 2, 3]), np.array([3, 4, 3]))  # no co-purchase of 1 and 2
    m = HybridRecommender(HybridConfig(mf_epochs=1)).fit(data, progress=None)
    assert m.E.shape == (4, 384)
    assert m.similar(1, 1)[0].product_id == 2


def test_save_load_round_trip(model: HybridRecommender, tmp_path) -> None:
    model.save(tmp_path / "rec")
    loaded = HybridRecommender.load(tmp_path / "rec")
    for c in (1, 22, None):
        assert loaded.recommend(c, 5) == model.recommend(c, 5)
    assert loaded.similar(3, 3) == model.similar(3, 3)
    np.savez(tmp_path / "rec" / "arrays.npz", item_ids=np.array([1], dtype=object), allow_pickle=True)
    with pytest.raises(ModelError):  # pickled/object arrays are refused
        HybridRecommender.load(tmp_path / "rec")


def test_rating_mf_recovers_low_rank_pattern(tmp_path) -> None:
    rng = np.random.default_rng(1)
    n_u, n_i = 60, 40
    u_f, i_f = rng.normal(size=(n_u, 2)), rng.normal(size=(n_i, 2))
    full = np.clip(3 + u_f @ i_f.T, 1, 5)
    mask = rng.random((n_u, n_i)) < 0.5
    uu, ii = np.nonzero(mask)
    tu, ti = np.nonzero(~mask)
    m = RatingMF(dim=4, burn_in=10, n_samples=20).fit(uu + 1, ii + 1, full[uu, ii])
    pred = m.predict(tu + 1, ti + 1)
    rmse = np.sqrt(((pred - full[tu, ti]) ** 2).mean())
    baseline = np.sqrt(((full[uu, ii].mean() - full[tu, ti]) ** 2).mean())
    assert rmse < 0.5 * baseline, (rmse, baseline)
    m.save(tmp_path / "mf")
    np.testing.assert_allclose(RatingMF.load(tmp_path / "mf").predict(tu + 1, ti + 1), pred, rtol=1e-6)


def test_hit_rate_beats_popularity_on_planted_data() -> None:
    data = planted_data(seed=3)
    data.times = np.arange(len(data.users), dtype=np.float64)
    res = evaluate_hit_rate(data, k=3, config=HybridConfig(mf_epochs=10, use_content=False))
    assert res["n_customers"] > 20
    assert res["hit_rate@3"] > res["popularity_hit_rate@3"]
    assert res["hit_rate@3"] >= 0.6
