"""Fixtures of the CRM ingestor tests: real Rasa events, a broker file, PostgreSQL, a TCP proxy.

``fixtures/rasa_events.jsonl`` are the 111 events Rasa 3.6.21's SQL event broker published for
six REST conversations of the real assistant (a chat verification, a website token, two
fallbacks, a human request, a /restart); the token was signed with ``CAPTURE_SECRET``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.faults import TcpProxy
from tests.requirements import POSTGRES, require_postgres

FIXTURE = Path(__file__).parent / "fixtures" / "rasa_events.jsonl"
CAPTURE_SECRET = "capture-secret-0123456789-abcdefghijklmnop"
PG = POSTGRES
PG_ADMIN_URL = "postgresql+psycopg2://root@127.0.0.1:5432/test"


def rasa_events() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0, every_s: float = 0.1) -> None:
    """Polls ``condition`` until it holds; fails naming ``what`` after ``timeout_s``.

    Why: a test waits for the state it means (a retry happened, a row is there), not for a fixed
    time that is too short on a loaded machine and too long on an idle one."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}", pytrace=False)
        time.sleep(every_s)


def renamed(events: list[dict], prefix: str) -> list[dict]:
    """The same conversations under other sender ids (other event keys)."""
    return [{**e, "sender_id": f"{prefix}{e['sender_id']}"} for e in events]


class BrokerFile:
    """A SQLite file with the table Rasa's SQLEventBroker creates, written the way it writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255), data TEXT)"
            )

    def publish(self, events: list[dict]) -> None:
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            for event in events:  # one commit per event, as SQLEventBroker.publish does
                conn.execute(
                    "INSERT INTO events (sender_id, data) VALUES (?, ?)", (event["sender_id"], json.dumps(event))
                )
                conn.commit()
        finally:
            conn.close()

    def max_id(self) -> int:
        with sqlite3.connect(self.path) as conn:
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]


@pytest.fixture
def identity_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from bot.settings import get_settings

    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", CAPTURE_SECRET)
    get_settings.cache_clear()
    yield CAPTURE_SECRET
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server (dropped afterwards), migrated and seeded small."""
    require_postgres()  # absent: a listed skip, a failure under CI; anything else below fails the test
    name = f"concierge_crm_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://root@{PG[0]}:{PG[1]}/{name}"
    from bot.seed import seed

    seed(url, progress=None, seed=3, customers=12, products=40, orders=40)
    try:
        yield url
    finally:
        from bot.db.session import get_engine

        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    """PostgreSQL behind a proxy a test can cut (the database is 'down' for its clients) and restore."""
    with TcpProxy(PG) as proxy:
        yield proxy
