"""Migration 0007 (the conversation hub) moves rows written before it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from bot.db.migrate import downgrade, upgrade
from bot.db.session import get_engine

PG_URL = "postgresql+psycopg2://root@127.0.0.1:5432/test"
BEFORE = "0006_dashboard_indexes"
T0 = datetime(2026, 1, 1, 9, 0)
T1 = datetime(2026, 1, 1, 10, 0)  # the sender's second conversation starts
SUMMARY = {"reason": "fallbacks", "slots": {"order_number": "190001"}}
TRANSCRIPT = [{"role": "user", "text": "help"}]
ENTITIES = [{"entity": "order_number", "value": "190001", "start": 0, "end": 6}]


def _old_rows(url: str) -> None:
    """Rows in the shape of 0006: ``conversation_id`` holds Rasa's sender string, JSON in Text."""
    with get_engine(url).begin() as c:
        c.execute(text("INSERT INTO customers (id, name, email, phone, tier, newsletter, status, created_at) "
                       "VALUES (1, 'Ann', 'ann@example.com', '', 'gold', false, 'active', :t)"), {"t": T0})
        c.execute(text(
            "INSERT INTO conversations (id, sender_id, started_at, last_event_at, outcome, turn_count, "
            "tasks_completed, escalated, last_fallback) VALUES "
            "(10, 'web-a', :t0, :t0, 'resolved', 1, 0, false, false), "
            "(11, 'web-a', :t1, :t1, 'escalated', 1, 0, true, false)"
        ), {"t0": T0, "t1": T1})
        c.execute(text(
            "INSERT INTO turns (id, conversation_id, role, event, text, entities, event_at, event_key) VALUES "
            "(1, 10, 'user', 'user', '190001', :e, :t0, 'k1'), (2, 11, 'user', 'user', 'hi', NULL, :t1, 'k2')"
        ), {"e": json.dumps(ENTITIES), "t0": T0, "t1": T1})
        at_first, at_second = datetime(2026, 1, 1, 9, 30), datetime(2026, 1, 1, 10, 30)
        c.execute(text(
            "INSERT INTO support_tickets (id, number, customer_id, conversation_id, category, subject, description, "
            "status, priority, created_at) VALUES "
            "(1, 'TK-700001', 1, 'web-a', 'complaint', 's', '', 'open', 'normal', :a), "
            "(2, 'TK-700002', 1, 'web-a', 'handoff', 's', '', 'open', 'normal', :b), "
            "(3, 'TK-700003', NULL, 'no-crm', 'handoff', 's', '', 'open', 'normal', :b)"
        ), {"a": at_first, "b": at_second})
        c.execute(text("INSERT INTO interactions (id, conversation_id, role, text, created_at) VALUES "
                       "(1, 'web-a', 'user', 'hello', :a)"), {"a": at_first})
        c.execute(text("INSERT INTO feedback (id, conversation_id, rating, comment, created_at) VALUES "
                       "(1, 'web-a', 5, '', :b)"), {"b": at_second})
        c.execute(text("INSERT INTO chat_verifications (id, conversation_id, session_id, customer_id, created_at, "
                       "last_seen_at) VALUES (1, 'web-a', 's1', 1, :a, :a)"), {"a": at_first})
        c.execute(text(
            "INSERT INTO feedback_mentions (id, source, source_id, conversation_id, crm_conversation_id, topic, "
            "aspect, quote, created_at, computed_at) VALUES "
            "(1, 'turn', 1, 'web-a', 10, 'late', 'late', 'q', :a, :a), "
            "(2, 'ticket', 1, 'web-a', NULL, 'late', 'late', 'q', :b, :b), "
            "(3, 'turn', 9, 'gone', 999, 'late', 'late', 'q', :b, :b)"
        ), {"a": at_first, "b": at_second})
        c.execute(text(
            "INSERT INTO handoffs (id, ticket_id, sender_id, reason, status, priority_score, summary, snapshot, "
            "transcript, labels, after_hours, created_at, updated_at) VALUES "
            "(1, 2, 'web-a', 'fallbacks', 'open', 1.0, :s, '{}', :tr, 'refund,vip', false, :b, :b), "
            "(2, 3, 'no-crm', 'fallbacks', 'open', 1.0, '', '{}', '', '', false, :b, :b)"
        ), {"s": json.dumps(SUMMARY), "tr": json.dumps(TRANSCRIPT), "b": at_second})


def _check_upgraded(url: str) -> None:
    with get_engine(url).connect() as c:
        def rows(sql: str) -> list[tuple]:
            return [tuple(r) for r in c.execute(text(sql)).all()]

        # each row links to the sender's conversation running when it was written; no conversation -> NULL
        assert rows("SELECT id, sender_id, conversation_id FROM support_tickets ORDER BY id") == [
            (1, "web-a", 10), (2, "web-a", 11), (3, "no-crm", None)]
        assert rows("SELECT sender_id, conversation_id FROM interactions") == [("web-a", 10)]
        assert rows("SELECT sender_id, conversation_id FROM feedback") == [("web-a", 11)]
        assert rows("SELECT sender_id, session_id, conversation_id FROM chat_verifications") == [("web-a", "s1", 10)]
        # a mention keeps its link, gets one by sender, or loses a dangling one
        assert rows("SELECT id, sender_id, conversation_id FROM feedback_mentions ORDER BY id") == [
            (1, "web-a", 10), (2, "web-a", 11), (3, "gone", None)]
        assert rows("SELECT id, conversation_id FROM handoffs ORDER BY id") == [(1, 11), (2, None)]
    with get_engine(url).connect() as c:
        from sqlalchemy.orm import Session

        from bot.db.models import Handoff, Turn

        s = Session(bind=c)
        first, second = s.get(Handoff, 1), s.get(Handoff, 2)
        assert (first.summary, first.snapshot, first.transcript, first.labels) == (SUMMARY, {}, TRANSCRIPT,
                                                                                  ["refund", "vip"])
        assert (second.summary, second.transcript, second.labels) == ({}, [], [])  # '' became the empty value
        assert s.get(Turn, 1).entities == ENTITIES and s.get(Turn, 2).entities is None
        assert c.execute(text("SELECT count(*) FROM turns WHERE entities IS NULL")).scalar() == 1  # SQL NULL
        s.close()


def _check_downgraded(url: str) -> None:
    with get_engine(url).connect() as c:
        assert [tuple(r) for r in c.execute(text(
            "SELECT conversation_id, crm_conversation_id FROM feedback_mentions ORDER BY id"))] == [
            ("web-a", 10), ("web-a", 11), ("gone", None)]
        assert c.execute(text("SELECT conversation_id FROM support_tickets WHERE id = 3")).scalar() == "no-crm"
        summary, labels, transcript = c.execute(
            text("SELECT summary, labels, transcript FROM handoffs WHERE id = 1")).one()
        assert (json.loads(summary), labels, json.loads(transcript)) == (SUMMARY, "refund,vip", TRANSCRIPT)
        assert json.loads(c.execute(text("SELECT entities FROM turns WHERE id = 1")).scalar()) == ENTITIES
        assert c.execute(text("SELECT entities FROM turns WHERE id = 2")).scalar() is None


def _roundtrip(url: str) -> None:
    upgrade(url, BEFORE)
    _old_rows(url)
    upgrade(url)
    _check_upgraded(url)
    downgrade(url, BEFORE)
    _check_downgraded(url)
    upgrade(url)
    _check_upgraded(url)


def test_sqlite_moves_existing_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    try:
        _roundtrip(url)
    finally:
        get_engine(url).dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of its own on the local PostgreSQL (concurrent runs never meet)."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"local PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}")
    name = f"concierge_hub_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_moves_existing_rows(pg_url):
    _roundtrip(pg_url)
