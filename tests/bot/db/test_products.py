from bot.db import products


def test_search_is_literal(session):
    assert products.search(session, "100%") == []
    assert products.search(session, "Memory_Card") == []
    assert all("tripod" in p.name.lower() for p in products.search(session, "TRIPOD", limit=3))


def test_best_sellers_ordering(session):
    rows = products.best_sellers(session, limit=10, in_stock_only=False)
    assert len(rows) == 10
    assert products.best_sellers(session, limit=0) == []


def test_category_units(session):
    counts = products.category_units_for_customer(session, 1)
    assert counts == sorted(counts, key=lambda c: (-c[1], c[0]))
    assert products.category_units_for_customer(session, 999_999) == []
