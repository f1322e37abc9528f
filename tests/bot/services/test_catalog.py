from bot.db import models as m
from bot.services import catalog


def test_categories(session):
    cats = catalog.categories(session)
    assert len(cats) >= 10
    assert "cameras" in cats and "coffee" in cats


def test_best_sellers_in_stock_sorted(session):
    best = catalog.best_sellers(session, limit=5)
    assert len(best) == 5
    assert all(p.stock > 0 for p in best)
    cams = catalog.best_sellers(session, category="Cameras", limit=3, exclude_product_ids=[best[0].id])
    assert cams and all(p.category == "cameras" for p in cams)
    assert best[0].id not in {p.id for p in cams}
    assert catalog.best_sellers(session, category="no such category") == []
    assert catalog.best_sellers(session, category="x" * 10_000) == []


def test_best_sellers_skip_out_of_stock(session):
    top = catalog.best_sellers(session, limit=1)[0]
    session.get(m.Product, top.id).stock = 0
    session.flush()
    assert top.id not in {p.id for p in catalog.best_sellers(session, limit=50)}


def test_customer_tastes(session):
    assert catalog.favourite_category(session, 1) in {"cameras", "coffee"}
    bought = catalog.purchased_product_ids(session, 1)
    assert bought and all(isinstance(i, int) for i in bought)
    assert catalog.favourite_category(session, 999_999) is None
    assert catalog.purchased_product_ids(session, 999_999) == set()


def test_find_products_escapes_wildcards(session):
    found = catalog.find_products(session, "memory card")
    assert found and all("memory card" in p.name.lower() for p in found)
    assert catalog.find_products(session, "%") == []
    assert catalog.find_products(session, "_") == []
    assert catalog.find_products(session, "' OR 1=1 --") == []
    assert catalog.find_products(session, "x" * 10_000) == []
    assert catalog.find_products(session, "") == []


def test_get_product(session):
    p = catalog.get_product(session, 1)
    assert p.id == 1 and p.sku.startswith("CAM-") and p.description
    assert catalog.get_product(session, 999_999) is None
    assert catalog.get_product(session, "1") is None


def test_list_products_pages_through_the_whole_catalogue(session):
    total = session.query(m.Product).count()
    first = catalog.list_products(session, per_page=50)
    assert first.total == total and first.page == 1 and first.pages == -(-total // 50)
    seen = []
    for n in range(1, first.pages + 1):
        seen += [p.id for p in catalog.list_products(session, page=n, per_page=50).items]
    assert sorted(seen) == sorted(p.id for p in session.query(m.Product))  # every product once
    cams = catalog.list_products(session, category="Cameras", per_page=100)
    assert cams.items and all(p.category == "cameras" for p in cams.items) and cams.category == "Cameras"
    assert catalog.list_products(session, page=10_000).items == []
    assert catalog.list_products(session, category="x" * 10_000).items == []
    assert catalog.list_products(session, category="no such").total == 0
