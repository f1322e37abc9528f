"""actions/context.py: the one-transaction helper every action uses, against the real SQLite database."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError

from actions.context import SQLITE_LOCKED_TRIES, in_transaction
from bot.db.models import Product


def _locked() -> OperationalError:
    return OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture
def no_test_products(db_url):  # noqa: ANN001, ANN201 - the database is shared: leave the catalog as seeded
    yield
    from actions.context import session_scope

    with session_scope() as session:
        session.execute(delete(Product).where(Product.name == "Lock test"))


async def test_a_transaction_sqlite_refused_runs_again_and_writes_once(db_url, no_test_products) -> None:
    calls = []

    def add(session) -> int:  # noqa: ANN001
        calls.append(1)
        session.add(Product(sku=f"LOCK-{len(calls)}", name="Lock test", category="test", price=1))
        session.flush()
        if len(calls) == 1:
            raise _locked()  # as SQLite answers a stale snapshot's write: the first insert is rolled back
        return session.scalar(select(func.count(Product.id)).where(Product.name == "Lock test"))

    assert await in_transaction(add) == 1
    assert len(calls) == 2
    assert await in_transaction(lambda s: s.scalar(select(func.count(Product.id)).where(
        Product.name == "Lock test"))) == 1


async def test_other_errors_and_a_lasting_lock_are_raised(db_url) -> None:
    calls = []

    def always_locked(session) -> None:  # noqa: ANN001
        calls.append(1)
        raise _locked()

    with pytest.raises(OperationalError):
        await in_transaction(always_locked)
    assert len(calls) == SQLITE_LOCKED_TRIES

    def broken(session) -> None:  # noqa: ANN001
        calls.append(1)
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: nope"))

    calls.clear()
    with pytest.raises(OperationalError):
        await in_transaction(broken)
    assert len(calls) == 1
