"""The seeded shop: deterministic, complete, with the structure the recommender learns from."""

from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db import models as m
from bot.db.base import utcnow
from bot.db.session import get_engine, session_scope
from bot.seed import DEMO_CUSTOMERS, demo_markdown, main, seed
from bot.settings import PROJECT_ROOT

FIXED_NOW = datetime(2026, 1, 15, 12, 0, 0)


def _fingerprint(url: str) -> list[tuple]:
    with session_scope(url) as s:
        rows = s.execute(
            select(
                m.Order.number, m.Order.customer_id, m.Order.status, m.Order.total, m.Order.created_at
            ).order_by(m.Order.number)
        ).all()
        products = s.execute(
            select(m.Product.sku, m.Product.name, m.Product.price).order_by(m.Product.id)
        ).all()
        items = s.execute(select(m.OrderItem.order_id, m.OrderItem.product_id).order_by(m.OrderItem.id)).all()
    return [tuple(r) for r in rows + products + items]


@pytest.fixture(scope="module")
def fixed_db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('seed') / 'a.db'}"
    stats = seed(url, seed=7, customers=40, products=100, orders=400, now=FIXED_NOW, progress=None)
    yield url, stats
    get_engine(url).dispose()


def test_deterministic_and_reseed_replaces(fixed_db, tmp_path):
    url, stats = fixed_db
    other = f"sqlite:///{tmp_path / 'b.db'}"
    seed(other, seed=7, customers=40, products=100, orders=400, now=FIXED_NOW, progress=None)
    assert _fingerprint(url) == _fingerprint(other)
    # seeding the same DB again replaces the data instead of duplicating it
    again = seed(other, seed=7, customers=40, products=100, orders=400, now=FIXED_NOW, progress=None)
    assert again.orders == stats.orders
    with session_scope(other) as s:
        assert s.scalar(select(func.count()).select_from(m.Order)) == stats.orders
    different = f"sqlite:///{tmp_path / 'c.db'}"
    seed(different, seed=8, customers=40, products=100, orders=400, now=FIXED_NOW, progress=None)
    assert _fingerprint(different) != _fingerprint(url)
    for u in (other, different):
        get_engine(u).dispose()


def test_if_empty_skips(fixed_db):
    url, _ = fixed_db
    messages = []
    stats = seed(url, if_empty=True, progress=messages.append)
    assert stats.skipped is True
    assert any("nothing to do" in msg for msg in messages)


def test_counts_and_every_status(session):
    count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
    assert count(m.Customer) == 60
    assert count(m.Product) == 320
    assert count(m.Order) >= 600
    statuses = set(session.scalars(select(m.Order.status).distinct()))
    assert statuses == {"pending", "processing", "shipped", "delivered", "cancelled", "returned"}
    assert len(set(session.scalars(select(m.Product.category).distinct()))) >= 10


def test_products_have_distinct_specific_descriptions(session):
    rows = session.execute(select(m.Product.name, m.Product.description, m.Product.category)).all()
    assert len({r.description for r in rows}) == len(rows)
    assert len({r.name for r in rows}) == len(rows)
    for _name, desc, _ in rows:
        assert desc.endswith(".") and len(desc.split()) >= 12
        assert desc[0].isupper()
    assert (
        session.scalar(select(func.count()).select_from(m.Product).where(m.Product.consumable.is_(True)))
        >= 20
    )


def test_shipments_payments_invoices_consistent(session):
    orders = session.scalars(select(m.Order)).all()
    for o in orders:
        if o.status in ("shipped", "delivered", "returned"):
            assert o.shipments, o.number
            sh = o.shipments[0]
            assert sh.eta is not None and sh.tracking_number and sh.events
            assert (sh.delivered_at is not None) == (o.status != "shipped")
            assert all(e.occurred_at <= utcnow() + timedelta(seconds=5) for e in sh.events)
        else:
            assert not o.shipments
        assert len(o.payments) == 1
        pay = o.payments[0]
        assert pay.amount == o.total
        paid = pay.status in ("paid", "refunded")
        inv = session.scalar(select(m.Invoice).where(m.Invoice.order_id == o.id))
        assert (inv is not None) == paid, o.number
        if o.status == "returned":
            assert pay.status == "refunded"
            assert any(r.kind == "return" for r in o.refunds)
        if o.status == "pending":
            assert pay.status == "pending"
        assert o.total == sum(i.unit_price * i.quantity for i in o.items)


def test_history_numbers_are_chronological(session):
    rows = session.execute(
        select(m.Order.number, m.Order.created_at).where(m.Order.number < "190000").order_by(m.Order.number)
    ).all()
    assert rows[0].number == "100001"
    assert [r.created_at for r in rows] == sorted(r.created_at for r in rows)
    span = rows[-1].created_at - rows[0].created_at
    assert timedelta(days=600) < span <= timedelta(days=731)


def test_customers_have_consistent_tastes(session):
    rows = session.execute(
        select(m.Order.customer_id, m.Product.category, m.OrderItem.quantity)
        .join(m.OrderItem, m.OrderItem.order_id == m.Order.id)
        .join(m.Product, m.Product.id == m.OrderItem.product_id)
    ).all()
    per_customer: dict[int, Counter] = defaultdict(Counter)
    for cid, cat, _qty in rows:
        per_customer[cid][cat] += 1
    shares = []
    for counts in per_customer.values():
        total = sum(counts.values())
        if total >= 15:
            top3 = sum(n for _, n in counts.most_common(3))
            shares.append(top3 / total)
    assert len(shares) >= 10
    assert sum(shares) / len(shares) > 0.75  # 12 categories: uniform taste would give ~0.25


def test_complementary_products_are_bought_together(session):
    rows = session.execute(
        select(m.OrderItem.order_id, m.Product.name).join(m.Product, m.Product.id == m.OrderItem.product_id)
    ).all()
    baskets: dict[int, list[str]] = defaultdict(list)
    for oid, name in rows:
        baskets[oid].append(name)
    with_camera = [b for b in baskets.values() if any("Mirrorless Camera" in n for n in b)]
    p_card_given_camera = sum(any("Memory Card" in n for n in b) for b in with_camera) / len(with_camera)
    p_card = sum(any("Memory Card" in n for n in b) for b in baskets.values()) / len(baskets)
    assert p_card_given_camera > 3 * p_card


def test_consumables_are_rebought(session):
    rows = session.execute(
        select(m.Order.customer_id, m.OrderItem.product_id)
        .join(m.OrderItem, m.OrderItem.order_id == m.Order.id)
        .join(m.Product, m.Product.id == m.OrderItem.product_id)
        .where(m.Product.consumable.is_(True))
    ).all()
    repeats = [k for k, n in Counter(rows).items() if n >= 2]
    assert len(repeats) >= 10


def test_demo_customers_and_orders(session):
    for demo in DEMO_CUSTOMERS:
        c = session.get(m.Customer, demo.id)
        assert (c.name, c.email, c.tier) == (demo.name, demo.email, demo.tier)
        for order in demo.orders:
            row = session.scalar(select(m.Order).where(m.Order.number == order.number))
            assert row.customer_id == demo.id
            assert row.status == order.state
            assert len(row.items) == len(order.product_types)
            if order.refund:
                assert order.refund[0] in {r.number for r in row.refunds}


def test_demo_markdown_in_sync():
    text = (PROJECT_ROOT / "bot" / "seed_demo.md").read_text(encoding="utf-8")
    assert text == demo_markdown()
    assert "| 1 | Alice Martin | alice.martin@example.com |" in text


def test_cli(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["--url", url, "--customers", "10", "--products", "80", "--orders", "50", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "seeded in" in out and "orders:" in out
    assert main(["--url", url, "--if-empty"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--url", url, "--customers", "2"])
    get_engine(url).dispose()
