import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from bot.db import models as m
from bot.db.session import get_engine, session_scope


def test_engine_cached_per_url(db_url, migrated_url):
    assert get_engine(db_url) is get_engine(db_url)
    assert get_engine(db_url) is not get_engine(migrated_url)
    assert get_engine() is get_engine(db_url)  # DATABASE_URL points at the test DB


def test_sqlite_pragmas(db_url):
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_session_scope_commits(fresh_db_url):
    with session_scope() as s:
        s.get(m.Customer, 1).phone = "+1-555-000-0000"
    with session_scope(fresh_db_url) as s:
        assert s.get(m.Customer, 1).phone == "+1-555-000-0000"


def test_session_scope_rolls_back_on_error(fresh_db_url):
    with pytest.raises(RuntimeError), session_scope(fresh_db_url) as s:
        s.get(m.Customer, 1).phone = "+1-555-111-1111"
        s.flush()
        raise RuntimeError("boom")
    with session_scope(fresh_db_url) as s:
        assert s.get(m.Customer, 1).phone != "+1-555-111-1111"


def test_foreign_keys_enforced(fresh_db_url):
    with pytest.raises(IntegrityError), session_scope(fresh_db_url) as s:
        s.add(m.OrderItem(order_id=1, product_id=999_999, quantity=1, unit_price=1))
        s.flush()
    with session_scope(fresh_db_url) as s:
        assert s.scalar(select(m.OrderItem).where(m.OrderItem.product_id == 999_999)) is None
