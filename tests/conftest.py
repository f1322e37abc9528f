"""Shared fixtures: a REAL SQLite database built by the Alembic migrations and seeded small.

Fixtures for every test folder (bot, actions, ...):

- ``migrated_url`` (session): URL of an empty SQLite file migrated to head with Alembic.
- ``db_url`` (session): URL of a migrated SQLite file seeded with ``bot.seed`` at a small size
  (``SMALL_SEED``; includes the four demo customers of ``bot/seed_demo.md`` with their fixed
  orders, dates relative to the test run). Requesting it also points ``DATABASE_URL`` at it and
  sets a test ``CONCIERGE_IDENTITY_SECRET`` (``TEST_SECRET``) for the rest of the session and
  clears ``get_settings``'s cache, so ``session_scope()`` without arguments uses it.
  Do not commit into it: use ``session`` or ``fresh_db_url``.
- ``session`` (function): a Session on ``db_url`` inside a transaction that is rolled back after
  the test (SAVEPOINT-safe even if the code under test commits).
- ``fresh_db_url`` (function): a private copy of the seeded database for tests that commit
  (e.g. through ``session_scope()``); DATABASE_URL points at it during the test.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from tests.requirements import ALLOW_SKIP_MARKER, fail_skip_under_ci

SMALL_SEED = {"seed": 42, "customers": 60, "products": 320, "orders": 600}
TEST_SECRET = "test-identity-secret-not-for-production"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{ALLOW_SKIP_MARKER}(reason): this test may skip even under CI=true (says why)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Under CI=true a skip is a failure (tests/requirements.py): a skipped test tested nothing."""
    report = yield
    fail_skip_under_ci(report, item)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """The same for a whole module skipped at import (``pytest.importorskip``, ``allow_module_level``)."""
    report = yield
    fail_skip_under_ci(report)
    return report


@pytest.fixture(scope="session")
def migrated_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from bot.db.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'migrated.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from bot.seed import seed
    from bot.settings import get_settings

    path = tmp_path_factory.mktemp("db") / "seeded.db"
    url = f"sqlite:///{path}"
    seed(url, progress=None, **SMALL_SEED)
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", url)
    mp.setenv("CONCIERGE_IDENTITY_SECRET", TEST_SECRET)
    get_settings.cache_clear()
    yield url
    mp.undo()
    get_settings.cache_clear()


def savepoint_engine(url: str):  # noqa: ANN201
    """pysqlite engine with real BEGIN/SAVEPOINT handling (SQLAlchemy's documented recipe)."""
    engine = create_engine(url, connect_args={"timeout": 10})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _rec) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA busy_timeout=10000")

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN")

    return engine


@pytest.fixture(scope="session")
def _rollback_engine(db_url: str):  # noqa: ANN202
    engine = savepoint_engine(db_url)
    yield engine
    engine.dispose()


def rolled_back_session(engine) -> Iterator[Session]:  # noqa: ANN001
    """A Session inside an outer transaction that is rolled back afterwards (commits become savepoints)."""
    conn = engine.connect()
    trans = conn.begin()
    sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        trans.rollback()
        conn.close()


@pytest.fixture
def session(_rollback_engine) -> Iterator[Session]:  # noqa: ANN001
    yield from rolled_back_session(_rollback_engine)


@pytest.fixture
def fresh_db_url(db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: ANN001
    from bot.settings import get_settings

    src_path = db_url.removeprefix("sqlite:///")
    dst_path = tmp_path / "fresh.db"
    src = sqlite3.connect(src_path)
    dst = sqlite3.connect(dst_path)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    url = f"sqlite:///{dst_path}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    from bot.db.session import get_engine

    get_engine(url).dispose()
    get_settings.cache_clear()
