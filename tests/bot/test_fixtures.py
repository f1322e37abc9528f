"""The shared fixtures of tests/conftest.py really isolate tests (the lead's action tests rely on it)."""

from sqlalchemy import select

from bot.db import models as m


def test_a_changes_and_even_commits(session):
    session.get(m.Customer, 1).name = "Changed In Test"
    session.commit()  # code under test may commit: only the SAVEPOINT is released
    assert session.get(m.Customer, 1).name == "Changed In Test"


def test_b_sees_the_original_data(session):
    assert session.scalar(select(m.Customer.name).where(m.Customer.id == 1)) == "Alice Martin"


def test_fresh_db_is_a_private_copy(fresh_db_url, db_url):
    from bot.db.session import session_scope

    assert fresh_db_url != db_url
    with session_scope() as s:  # DATABASE_URL points at the copy during the test
        s.get(m.Customer, 2).name = "Only In Copy"
    with session_scope(db_url) as s:
        assert s.get(m.Customer, 2).name == "Bob Nguyen"
    with session_scope(fresh_db_url) as s:
        assert s.get(m.Customer, 2).name == "Only In Copy"
